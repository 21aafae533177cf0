"""What a candidate program did: one `PairResult` per grid, a `ProgramReport` per task; JSON round-trips.

Statuses: "returned" (a valid grid, not compared), "exact" and "wrong_output" (compared with a known
output), "exception", "timeout", "memory_exceeded", "invalid_output" (the return value is not a grid)
and "crashed" (the interpreter died).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from verifier.grid_verifier import GridDiff

RETURNED, EXACT, WRONG_OUTPUT = "returned", "exact", "wrong_output"
EXCEPTION, TIMEOUT, MEMORY_EXCEEDED = "exception", "timeout", "memory_exceeded"
INVALID_OUTPUT, CRASHED = "invalid_output", "crashed"
STATUSES = (RETURNED, EXACT, WRONG_OUTPUT, EXCEPTION, TIMEOUT, MEMORY_EXCEEDED, INVALID_OUTPUT, CRASHED)


@dataclass(frozen=True)
class PairResult:
    """What the program did on one grid. `output` is the returned grid as lists (status returned,
    exact or wrong_output); `diff` is set for wrong_output; `line` is the program line of an exception."""

    index: int
    status: str
    output: list[list[int]] | None = None
    seconds: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    line: int | None = None
    diff: GridDiff | None = None

    @property
    def grid(self) -> np.ndarray | None:
        return None if self.output is None else np.array(self.output, dtype=np.uint8)

    def at(self, index: int) -> PairResult:
        """The same result for the grid at `index`."""
        return replace(self, index=index)

    def to_dict(self) -> dict:
        return {"index": self.index, "status": self.status, "output": self.output, "seconds": self.seconds,
                "error_type": self.error_type, "error_message": self.error_message, "line": self.line,
                "diff": None if self.diff is None else self.diff.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> PairResult:
        diff = data.get("diff")
        return cls(int(data["index"]), data["status"], data.get("output"), data.get("seconds"),
                   data.get("error_type"), data.get("error_message"), data.get("line"),
                   None if diff is None else GridDiff.from_dict(diff))


@dataclass(frozen=True)
class ProgramReport:
    """A program checked on a task: train pairs compared with their outputs, test inputs only run.

    `test` statuses are "returned" (or a failure) and never compared: the report is what a solver
    may see. `verifier.sandbox.score_test_outputs` compares them for scoring and reports.
    """

    task_id: str
    train: tuple[PairResult, ...]
    test: tuple[PairResult, ...]
    time_limit_s: float
    memory_limit_mb: int
    network_namespace: bool
    seconds: float
    test_scored: bool = False

    @property
    def n_train_exact(self) -> int:
        return sum(r.status == EXACT for r in self.train)

    @property
    def all_train_exact(self) -> bool:
        return self.n_train_exact == len(self.train)

    def test_outputs(self) -> list[np.ndarray | None]:
        """The program's answer for each test input (None where it gave none): candidates."""
        return [r.grid for r in self.test]

    def to_dict(self) -> dict:
        return {
            "task_id": self.task_id,
            "all_train_exact": self.all_train_exact,
            "train_exact": self.n_train_exact,
            "train_pairs": len(self.train),
            "train": [r.to_dict() for r in self.train],
            "test": [r.to_dict() for r in self.test],
            "test_scored": self.test_scored,
            "limits": {"time_limit_s": self.time_limit_s, "memory_limit_mb": self.memory_limit_mb},
            "isolation": {"network_namespace": self.network_namespace},
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ProgramReport:
        return cls(data["task_id"], tuple(PairResult.from_dict(r) for r in data["train"]),
                   tuple(PairResult.from_dict(r) for r in data["test"]),
                   float(data["limits"]["time_limit_s"]), int(data["limits"]["memory_limit_mb"]),
                   bool(data["isolation"]["network_namespace"]), float(data["seconds"]),
                   bool(data.get("test_scored", False)))
