"""Candidate programs checked on ARC tasks in the sandbox: what the planner and ``hybrid-arc sandbox run`` call.

`check_program` runs a program (source defining ``transform(grid) -> grid``) on a task's train and
test inputs and compares the train outputs; `score_test_outputs` compares the test outputs too, for
scoring only; `check_program_file` does both for a program file and a task of a data spec. How the
program is isolated and limited is in `verifier.sandbox_process`; what a report holds is in
`verifier.program_report`; reports become verifier problems in `verifier.program_problems`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from hybrid_pipeline.arc.errors import ARCDataError, Problem
from hybrid_pipeline.arc.tasks import Task
from verifier.grid_verifier import grid_diff
from verifier.program_file import load_task, read_program
from verifier.program_report import EXACT, RETURNED, WRONG_OUTPUT, PairResult, ProgramReport
from verifier.sandbox_process import (
    DEFAULT_MEMORY_LIMIT_MB,
    DEFAULT_TIME_LIMIT_S,
    SandboxError,
    network_namespace_available,
    run_program,
)

__all__ = ["SandboxError", "check_program", "check_program_file", "program_report_json", "run_program",
           "score_test_outputs"]


def check_program(source: str, task: Task, *, time_limit_s: float = DEFAULT_TIME_LIMIT_S,
                  memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB, include_test: bool = True,
                  as_numpy: bool = False) -> ProgramReport:
    """Run the program on the task's train inputs (and test inputs) and compare the train outputs.

    Test inputs are run so their outputs can be candidates; test outputs are never read. Raises
    SandboxError when the sandbox itself fails.
    """
    start = time.monotonic()
    inputs = [ex.input for ex in task.train] + ([ex.input for ex in task.test] if include_test else [])
    results = run_program(source, inputs, time_limit_s=time_limit_s, memory_limit_mb=memory_limit_mb,
                          as_numpy=as_numpy)
    n_train = len(task.train)
    train = tuple(_compare(r, ex.output) for r, ex in zip(results[:n_train], task.train))
    test = tuple(r.at(i) for i, r in enumerate(results[n_train:]))
    return ProgramReport(task.id, train, test, float(time_limit_s), int(memory_limit_mb),
                         network_namespace_available(), round(time.monotonic() - start, 3))


def score_test_outputs(report: ProgramReport, task: Task) -> ProgramReport:
    """The report with test results compared to the task's known test outputs.

    For scoring and reports only (the CLI): solvers and the planner must not call this, it reads
    the expected test outputs. Tasks without solutions come back unchanged.
    """
    if not task.has_solutions or len(task.test) != len(report.test):
        return report
    test = tuple(_compare(r, ex.output) for r, ex in zip(report.test, task.test))
    return ProgramReport(report.task_id, report.train, test, report.time_limit_s, report.memory_limit_mb,
                         report.network_namespace, report.seconds, test_scored=True)


def check_program_file(program_path: str | os.PathLike, data_spec: str, task_id: str, *,
                       time_limit_s: float = DEFAULT_TIME_LIMIT_S,
                       memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB) -> ProgramReport:
    """The program in `program_path` checked on task `task_id` of `data_spec`, test outputs scored
    when the data has solutions.

    Raises ARCDataError for an unreadable program file, a data spec that does not load, a task id
    that is not there, or limits out of range; SandboxError when the sandbox itself fails.
    """
    source = read_program(program_path)
    if not time_limit_s > 0 or not memory_limit_mb >= 64:
        raise ARCDataError(Problem(f"limits out of range: time limit {time_limit_s} s (expected > 0), "
                                   f"memory {memory_limit_mb} MB (expected >= 64)"))
    task = load_task(data_spec, task_id)
    report = check_program(source, task, time_limit_s=time_limit_s, memory_limit_mb=memory_limit_mb)
    return score_test_outputs(report, task)


def program_report_json(program_path: str | os.PathLike, data_spec: str, task_id: str, *,
                        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
                        memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB) -> dict:
    """What ``hybrid-arc sandbox run --program FILE --data SPEC --task ID`` prints, as a dict:
    `check_program_file`'s report with "program" and "data" added. Raises as that does."""
    report = check_program_file(program_path, data_spec, task_id, time_limit_s=time_limit_s,
                                memory_limit_mb=memory_limit_mb)
    return {**report.to_dict(), "program": str(Path(program_path)), "data": data_spec}


def _compare(r: PairResult, expected: np.ndarray) -> PairResult:
    if r.status != RETURNED:
        return r
    diff = grid_diff(expected, r.grid)
    if diff.equal:
        return PairResult(r.index, EXACT, r.output, r.seconds)
    return PairResult(r.index, WRONG_OUTPUT, r.output, r.seconds, diff=diff)
