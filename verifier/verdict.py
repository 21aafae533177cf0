"""What the verifier says about a candidate: structured problems a formatter can turn into text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The kinds the verifier and the planner emit, most important first: without a candidate or a readable
# grid nothing else can be checked; a wrong size, shape or palette is a plain error in the answer; a
# program's failures come next; consistency checks only make an answer doubtful.
PROBLEM_KINDS = (
    "no_candidate",
    "parse",
    "format",
    "size",
    "values",
    "shape",
    "palette",
    "program_crashed",
    "program_exception",
    "program_timeout",
    "program_memory_exceeded",
    "program_invalid_output",
    "program_wrong_output",
    "leave_one_out",
    "augmentation",
)
# What a consumer counting kinds (the feedback embedding) calls every kind not listed above.
OTHER_KIND = "other"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a candidate.

    kind: a short stable identifier, one of PROBLEM_KINDS ("parse", "shape", "palette",
    "leave_one_out", "program_exception", ...). where: the place it concerns ("test 0",
    "train 2 cell (3, 4)").
    expected / got: JSON-friendly values (a shape, a colour set, a grid, a message).
    """

    kind: str
    where: str
    expected: Any = None
    got: Any = None
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Problem":
        return cls(**{key: data.get(key) for key in ("kind", "where", "expected", "got")},
                   detail=data.get("detail", ""))


@dataclass(frozen=True)
class Verdict:
    """ok: no problem found. score: 0..1, higher is more plausible; ranks candidates in the planner."""

    ok: bool
    score: float
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "score": self.score, "problems": [p.to_dict() for p in self.problems]}

    @classmethod
    def from_dict(cls, data: dict) -> "Verdict":
        return cls(ok=bool(data["ok"]), score=float(data["score"]),
                   problems=tuple(Problem.from_dict(p) for p in data.get("problems", [])))
