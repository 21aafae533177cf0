"""A program's report as the verifier's problems and verdict, so feedback reads like any other check."""

from __future__ import annotations

from verifier.grid_verifier import diff_problem
from verifier.program_report import (
    EXACT,
    EXCEPTION,
    INVALID_OUTPUT,
    MEMORY_EXCEEDED,
    RETURNED,
    TIMEOUT,
    WRONG_OUTPUT,
    PairResult,
    ProgramReport,
)
from verifier.verdict import Problem, Verdict


def program_problems(report: ProgramReport) -> list[Problem]:
    """One Problem per train pair that is not exact and per test input the program failed on.

    Kinds: "program_wrong_output" (expected/got shape and differing cells), "program_exception",
    "program_timeout", "program_memory_exceeded", "program_invalid_output", "program_crashed".
    """
    problems = []
    for split, results in (("train", report.train), ("test", report.test)):
        for r in results:
            if r.status in (EXACT, RETURNED):
                continue
            problems.append(_pair_problem(f"{split} {r.index}", r, report))
    return problems


def program_verdict(report: ProgramReport) -> Verdict:
    """Verdict on a program: ok when every train pair is exact and every test input gave a grid;
    score is the fraction of train pairs solved exactly."""
    problems = program_problems(report)
    score = report.n_train_exact / len(report.train) if report.train else 0.0
    return Verdict(not problems, round(score, 6), tuple(problems))


def _pair_problem(where: str, r: PairResult, report: ProgramReport) -> Problem:
    kind = f"program_{r.status}"
    if r.status == WRONG_OUTPUT and r.diff is not None:
        return diff_problem(kind, where, r.diff)
    if r.status == EXCEPTION:
        at = f" at line {r.line}" if r.line is not None else ""
        return Problem(kind, where, expected="a returned grid", got=f"{r.error_type}: {r.error_message}",
                       detail=f"raised {r.error_type}{at}: {r.error_message}")
    if r.status == TIMEOUT:
        return Problem(kind, where, expected=f"at most {report.time_limit_s} s", got="no result in time",
                       detail=r.error_message or "")
    if r.status == MEMORY_EXCEEDED:
        return Problem(kind, where, expected=f"at most {report.memory_limit_mb} MB", got="MemoryError",
                       detail=r.error_message or "")
    if r.status == INVALID_OUTPUT:
        return Problem(kind, where, expected="a grid: 1-30 rows of 1-30 ints 0..9", got=r.error_message,
                       detail=r.error_message or "")
    return Problem(kind, where, expected="a returned grid", got=r.error_message, detail=r.error_message or "")
