"""ARC scoring and the Kaggle submission format.

Rules: each test input gets up to 2 attempts and is solved if either equals the expected grid
exactly (shape and every cell). Two averages are in use and they differ when tasks have several
test inputs:
  - per task (headline; the TRM evaluator and ARC Prize benchmarking): a task scores the fraction
    of its test inputs solved, the dataset the mean over tasks;
  - per test output (Kaggle's text): solved test outputs over all test outputs.

Submission format: ``{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}``, one entry per test
input in order, every task present, both attempts always present. Validation can relax "every task
present" (`require_all=False`) to score a partial run on the tasks it holds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from hybrid_pipeline.arc.errors import ARCDataError, Problem
from hybrid_pipeline.arc.files import atomic_write_json
from hybrid_pipeline.arc.tasks import Task, parse_grid
from hybrid_pipeline.arc.wording import plural

ATTEMPT_KEYS = ("attempt_1", "attempt_2")
# Written where a solver has no prediction: the format requires both attempts for every test input.
PLACEHOLDER_GRID = np.zeros((1, 1), dtype=np.uint8)

# task_id -> one list of attempts (grids) per test input
Submission = dict[str, list[list[np.ndarray]]]


def grids_equal(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return a is not None and b is not None and a.shape == b.shape and bool(np.array_equal(a, b))


def is_solved(attempts: Sequence[np.ndarray | None], expected: np.ndarray, max_attempts: int = 2) -> bool:
    """True if any of the first `max_attempts` attempts equals `expected` exactly."""
    return any(grids_equal(a, expected) for a in list(attempts)[:max_attempts])


@dataclass
class TaskScore:
    task_id: str
    solved: list[bool]  # one per test input

    @property
    def score(self) -> float:
        return sum(self.solved) / len(self.solved)


@dataclass
class ScoreReport:
    """Scores of a submission over a set of tasks, with both averages labelled."""

    tasks: list[TaskScore] = field(default_factory=list)

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def n_outputs(self) -> int:
        return sum(len(t.solved) for t in self.tasks)

    @property
    def n_solved_outputs(self) -> int:
        return sum(sum(t.solved) for t in self.tasks)

    @property
    def task_score(self) -> float:
        """Per-task average: mean over tasks of the fraction of test inputs solved."""
        return sum(t.score for t in self.tasks) / self.n_tasks if self.tasks else 0.0

    @property
    def output_score(self) -> float:
        """Per-output average: solved test outputs over all test outputs."""
        return self.n_solved_outputs / self.n_outputs if self.tasks else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_score": self.task_score,
            "output_score": self.output_score,
            "tasks": self.n_tasks,
            "test_outputs": self.n_outputs,
            "solved_test_outputs": self.n_solved_outputs,
            "per_task": {t.task_id: t.solved for t in self.tasks},
        }


def score_submission(submission: Submission, tasks: Sequence[Task], max_attempts: int = 2) -> ScoreReport:
    """Score `submission` against the tasks' test outputs. Missing tasks or inputs count as unsolved."""
    report = ScoreReport()
    for task in tasks:
        if not task.has_solutions:
            raise ARCDataError(Problem("cannot score: the task has no test outputs", file=task.source,
                                       task_id=task.id))
        attempts = submission.get(task.id, [])
        solved = [is_solved(attempts[i] if i < len(attempts) else [], ex.output, max_attempts)
                  for i, ex in enumerate(task.test)]
        report.tasks.append(TaskScore(task.id, solved))
    return report


def validate_submission(obj: Any, tasks: Sequence[Task], *, file: str | None = None,
                        dataset_ids: Iterable[str] | None = None, require_all: bool = True
                        ) -> tuple[Submission, list[Problem]]:
    """Check a submission's JSON object against the tasks; returns the parsed grids and every problem.

    Each task present must have one entry per test input, each with both attempts as valid grids.
    With `require_all` every task must be present (Kaggle's rule; one problem counts those missing
    and names the first few); without it, missing tasks are left out of the result. Task ids that
    are not in `dataset_ids` (default: the ids of `tasks`) are problems too (usually the wrong
    dataset); ids in `dataset_ids` but not in `tasks` (tasks not selected) are ignored.
    """
    problems: list[Problem] = []
    if not isinstance(obj, dict):
        return {}, [Problem(f"expected an object mapping task ids to lists of attempts, got "
                            f"{type(obj).__name__}", file=file)]
    known = set(dataset_ids) if dataset_ids is not None else {t.id for t in tasks}
    problems += _summed([tid for tid in obj if tid not in known], file,
                        "task is not in the dataset being scored",
                        f"{{n}} of the submission's {plural(len(obj), 'task')} are not in the dataset being scored")
    if require_all:
        problems += _summed([t.id for t in tasks if t.id not in obj], file,
                            "task missing from submission (every task must be present)",
                            f"{{n}} of {plural(len(tasks), 'task')} missing from submission (every task must be present)")
    submission: Submission = {}
    for task in tasks:
        if task.id not in obj:
            continue
        entries = obj[task.id]
        n = len(task.test)
        if not isinstance(entries, list) or len(entries) != n:
            got = plural(len(entries), "entry", "entries") if isinstance(entries, list) else type(entries).__name__
            problems.append(Problem(f"expected a list of {plural(n, 'entry', 'entries')} (one per test input), got {got}",
                                    file=file, task_id=task.id))
            continue
        per_input = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                problems.append(Problem("expected an object with attempt_1 and attempt_2", file=file,
                                        task_id=task.id, place=f"test[{i}]"))
                continue
            attempts = []
            for key in ATTEMPT_KEYS:
                if key not in entry:
                    problems.append(Problem(f"missing '{key}'", file=file, task_id=task.id,
                                            place=f"test[{i}]"))
                    continue
                grid, found = parse_grid(entry[key], file=file, task_id=task.id, place=f"test[{i}].{key}")
                problems += found
                attempts.append(grid)
            per_input.append(attempts)
        submission[task.id] = per_input
    return submission, problems


def _summed(task_ids: list[str], file: str | None, one: str, many: str, shown: int = 5) -> list[Problem]:
    """One problem for the ids: `one` naming the task when there is one, else `many` (with {n}) and
    the first few ids, so a submission for the wrong dataset is a line, not hundreds."""
    if len(task_ids) <= 1:
        return [Problem(one, file=file, task_id=tid) for tid in task_ids]
    listed = ", ".join(task_ids[:shown]) + (", ..." if len(task_ids) > shown else "")
    return [Problem(f"{many.format(n=len(task_ids))}: {listed}", file=file)]


def read_submission(path: str | os.PathLike, tasks: Sequence[Task], *, dataset_ids: Iterable[str] | None = None,
                    require_all: bool = True) -> Submission:
    """Load and validate a submission file (see `validate_submission`); raises ARCDataError listing
    every problem."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except json.JSONDecodeError as e:
        raise ARCDataError(Problem(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
                                   file=str(path))) from None
    except OSError as e:
        raise ARCDataError(Problem(f"cannot read submission: {e.strerror}", file=str(path))) from None
    submission, problems = validate_submission(obj, tasks, file=str(path), dataset_ids=dataset_ids,
                                               require_all=require_all)
    if problems:
        raise ARCDataError(problems)
    return submission


def submission_to_json(attempts: Submission, tasks: Sequence[Task]) -> dict[str, list[dict[str, Any]]]:
    """Kaggle JSON for `tasks`: exactly 2 attempts per test input, placeholders where none was made.

    Extra attempts beyond 2 are dropped; a task missing from `attempts` gets placeholders throughout.
    """
    out = {}
    for task in tasks:
        per_input = attempts.get(task.id, [])
        entries = []
        for i in range(len(task.test)):
            given = [g for g in (per_input[i] if i < len(per_input) else []) if g is not None][:2]
            given += [PLACEHOLDER_GRID] * (2 - len(given))
            entries.append({key: np.asarray(g).tolist() for key, g in zip(ATTEMPT_KEYS, given)})
        out[task.id] = entries
    return out


def write_submission(path: str | os.PathLike, attempts: Submission, tasks: Sequence[Task]) -> None:
    """Write `submission.json` atomically (a kill leaves the old file or the new one, never half)."""
    atomic_write_json(path, submission_to_json(attempts, tasks))
