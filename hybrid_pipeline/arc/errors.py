"""User-facing data errors: each problem names the file, the task, the place and what was expected.

Everything in `hybrid_pipeline.arc` that rejects user input raises `ARCDataError` (or returns
`Problem`s when the caller wants to collect them all, as `data check` does). The CLI prints one line
per problem and exits 2; nothing here prints or exits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with user input.

    `place` is a path inside the task such as ``train[2].output`` or ``test[0].input row 3``.
    """

    message: str
    file: str | None = None
    task_id: str | None = None
    place: str | None = None

    def __str__(self) -> str:
        where = [part for part in (self.file, _task_label(self.task_id), self.place) if part]
        return f"{': '.join(where)}: {self.message}" if where else self.message


def _task_label(task_id: str | None) -> str | None:
    return f"task {task_id}" if task_id else None


class ARCDataError(ValueError):
    """Bad ARC input. `problems` holds every problem found, each printable as one line."""

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
