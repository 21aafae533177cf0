"""What the planner did, attempt by attempt: JSON-friendly records for results.jsonl and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verifier.verdict import Verdict


@dataclass
class Proposal:
    """One candidate from a proposer.

    grid: the answer, or None when the proposer produced nothing usable (then `error` says why).
    text: what the proposer wrote (LM answer text, program source), kept for the trace.
    problems/consistency: what the proposer itself found out; a program proposer runs its program on
    the train pairs, and `consistency` is the fraction it got exactly right (1.0 when not applicable).
    """

    grid: np.ndarray | None
    text: str | None = None
    error: str | None = None
    confidence: float = 0.0
    problems: tuple = ()
    consistency: float = 1.0
    # The proposer's own account of the candidate (a search's program, rank and which train pairs
    # it reproduces), kept in results.jsonl and shown in the report.
    info: dict | None = None


@dataclass
class Attempt:
    proposer: str
    index: int  # 0-based within its test input
    grid: np.ndarray | None
    text: str | None
    error: str | None
    verdict: Verdict
    feedback: str  # what the next attempt is told about this one
    seconds: float  # inside the proposer's `propose`
    duplicate_of: int | None = None  # index of the earlier attempt that proposed the same grid
    predict_seconds: float = 0.0  # the proposer's consistency predictions made for this check (model calls)
    check_seconds: float = 0.0  # in the verifier's own checks
    info: dict | None = None  # the proposal's `info`

    @property
    def fits_train(self) -> bool:
        """The proposer reproduced every demonstration with this candidate (a program that fits)."""
        return bool(self.info and self.info.get("fits") and all(self.info["fits"]))

    def to_dict(self) -> dict[str, Any]:
        return {"proposer": self.proposer, "index": self.index,
                "grid": None if self.grid is None else self.grid.tolist(), "text": self.text,
                "error": self.error, "verdict": self.verdict.to_dict(), "feedback": self.feedback,
                "seconds": round(self.seconds, 4), "predict_seconds": round(self.predict_seconds, 4),
                "check_seconds": round(self.check_seconds, 4),
                "duplicate_of": self.duplicate_of, "info": self.info}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Attempt":
        grid = None if data["grid"] is None else np.asarray(data["grid"], dtype=np.uint8)
        return cls(data["proposer"], data["index"], grid, data.get("text"), data.get("error"),
                   Verdict.from_dict(data["verdict"]), data.get("feedback", ""), data.get("seconds", 0.0),
                   data.get("duplicate_of"), data.get("predict_seconds", 0.0), data.get("check_seconds", 0.0),
                   data.get("info"))


@dataclass
class TestInputResult:
    """The attempts made for one test input and the (up to) two answers chosen from them."""

    answers: list[np.ndarray] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"answers": [a.tolist() for a in self.answers], "attempts": [a.to_dict() for a in self.attempts]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TestInputResult":
        return cls([np.asarray(a, dtype=np.uint8) for a in data["answers"]],
                   [Attempt.from_dict(a) for a in data["attempts"]])
