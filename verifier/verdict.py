"""What the verifier says about a candidate: structured problems a formatter can turn into text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a candidate.

    kind: a short stable identifier ("parse", "shape", "palette", "leave_one_out", "augmentation",
    "program_exception", ...). where: the place it concerns ("test 0", "train 2 cell (3, 4)").
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
