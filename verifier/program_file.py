"""A candidate program read from a file and one task found in a data spec, with errors that name both."""

from __future__ import annotations

import os
from pathlib import Path

from hybrid_pipeline.arc.errors import ARCDataError, Problem
from hybrid_pipeline.arc.tasks import Task, load_tasks


def read_program(path: str | os.PathLike) -> str:
    """The program's source. Raises ARCDataError naming the file when it cannot be read or is not UTF-8."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ARCDataError(Problem(f"program is not UTF-8 text ({e.reason} at byte {e.start})",
                                   file=str(path))) from None
    except OSError as e:
        raise ARCDataError(Problem(f"cannot read program: {e.strerror}", file=str(path))) from None


def load_task(data_spec: str, task_id: str) -> Task:
    """The task `task_id` of `data_spec`. Raises ARCDataError with the loader's problems about that task
    or the whole spec, or saying that no task has that id."""
    result = load_tasks(data_spec)
    task = next((t for t in result.tasks if t.id == task_id), None)
    if task is not None:
        return task
    # Problems about this task (it failed validation) or about the whole spec explain the absence.
    related = [p for p in result.problems if p.task_id in (task_id, None)]
    if related:
        raise ARCDataError(related)
    raise ARCDataError(Problem(f"no task with id '{task_id}' ({len(result.tasks)} tasks loaded)",
                               file=data_spec, task_id=task_id))
