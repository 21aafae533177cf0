"""`hybrid-arc plan`: run the planner over tasks, writing results as each task finishes.

Files in `out_dir` (docs/runs.md):
- `results.jsonl`: one line per finished task (its attempts, verdicts, feedback, chosen answers,
  whether they were right when the solution is known), appended as the task finishes;
- `submission.json`: Kaggle format for every task of the run (placeholders for tasks not yet
  done), rewritten atomically after each task;
- `summary.json` and `report.html`: at the end, and on Ctrl-C or SIGTERM with `"interrupted": true`
  (`runs.finish_run`: a signal lets the task's writes finish, then stops the run);
- `run.json`: the settings (`meta`) and versions, so that a resume refuses to mix runs (see
  `hybrid_pipeline.runs`).
`resume=True` skips the tasks already in results.jsonl; without it, an existing results.jsonl is
never overwritten. `workers=N` solves tasks in N processes (forked, so models are shared, not
copied); results are appended in task order, identical to one worker's. A task that raises or runs out of time is recorded as an error and the run goes
on. Expected outputs are read only here, after the planner is done with a task, to score it.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hybrid_pipeline.arc.files import append_jsonl, atomic_write_json, atomic_write_text
from hybrid_pipeline.arc.scoring import is_solved, score_submission, write_submission
from hybrid_pipeline.arc.tasks import Task
from hybrid_pipeline.runs import finish_run, kept_records, open_run, warn_random_weights
from planner.planner import ARCPlanner
from planner.trace import TestInputResult

RESULTS, SUBMISSION, SUMMARY, REPORT = "results.jsonl", "submission.json", "summary.json", "report.html"
# Settings added since older runs were recorded, with the value those runs ran with.
IMPLIED_BY_OLDER_RUNS = {"trm_ttt.init": "mean"}


class TaskTimeout(BaseException):
    """Raised by the alarm; a BaseException so that the planner's per-attempt `except Exception`
    (which turns a proposer's failure into a failed attempt) does not swallow it."""


@dataclass
class PlanRun:
    """What a run did; `summary` is what summary.json holds."""

    summary: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)


def run_plan(planner: ARCPlanner, tasks: Sequence[Task], out_dir: str | Path, *, resume: bool = False,
             overwrite: bool = False, task_timeout_s: float | None = None, meta: dict[str, Any] | None = None,
             progress: bool = True, workers: int = 1) -> PlanRun:
    from tqdm.auto import tqdm

    out = Path(out_dir)
    results_path = out / RESULTS
    meta = dict(meta or {})
    continuing = open_run(out, run_settings(meta), resume=resume, overwrite=overwrite, results=RESULTS,
                          implied=IMPLIED_BY_OLDER_RUNS)
    if meta.get("random_weights"):  # said once the run is open, so a refusal stays one line
        warn_random_weights(meta["random_weights"], "pass --backbone PATH, --trm DIR or --hybrid DIR")
    records = kept_records(results_path, tasks, continuing)
    todo = [t for t in tasks if t.id not in records]
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="plan", unit="task", disable=not progress)

    def finish(interrupted: bool) -> dict[str, Any]:
        bar.close()
        write_submission(out / SUBMISSION, _attempts(records), tasks)
        summary = summarize(tasks, records, meta, interrupted=interrupted)
        atomic_write_json(out / SUMMARY, summary, indent=2)
        from planner.report import render_report

        atomic_write_text(out / REPORT, render_report(tasks, records, summary))
        return summary

    with finish_run(out, finish) as loop:
        for record in _solved(planner, todo, task_timeout_s, workers):
            with loop.writing():
                append_jsonl(results_path, record)
                records[record["task_id"]] = record
                write_submission(out / SUBMISSION, _attempts(records), tasks)
            bar.update(1)
            bar.set_postfix_str(_running_score(records))
    return PlanRun(loop.finished, [records[t.id] for t in tasks if t.id in records])


def run_settings(meta: dict[str, Any]) -> dict[str, Any]:
    """What in a run's description changes its results (all but what follows from the rest)."""
    return {k: v for k, v in meta.items() if k != "random_weights"}


def _solved(planner: ARCPlanner, tasks: Sequence[Task], timeout_s: float | None, workers: int):
    """Each task's record, in task order, solved here or in `workers` forked processes."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield _solve_one(planner, task, timeout_s)
        return
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with context.Pool(min(workers, len(tasks)), initializer=_start_worker,
                      initargs=(planner, timeout_s, workers)) as pool:
        yield from pool.imap(_solve_in_worker, tasks)


_WORKER: dict[str, Any] = {}


def _start_worker(planner: ARCPlanner, timeout_s: float | None, workers: int) -> None:
    from hybrid_pipeline.threads import share_cores

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # and SIGTERM: a worker sent one just stops
    share_cores(workers)
    _WORKER.update(planner=planner, timeout_s=timeout_s)


def _solve_in_worker(task: Task) -> dict[str, Any]:
    return _solve_one(_WORKER["planner"], task, _WORKER["timeout_s"])


def _solve_one(planner: ARCPlanner, task: Task, timeout_s: float | None) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with _time_limit(timeout_s):
            results = planner.solve(task.without_solutions())
        status, error = "ok", None
    except TaskTimeout:
        results, status, error = [], "error", f"timeout: the task took longer than {timeout_s:g} s"
    except Exception as e:  # one task's fault must not end the run
        results, status, error = [], "error", f"{type(e).__name__}: {e}"
    results += [TestInputResult() for _ in range(len(task.test) - len(results))]
    test = []
    for i, result in enumerate(results):
        entry = result.to_dict()
        # Scoring only: the planner is done with this task and never saw these outputs.
        expected = task.test[i].output
        entry["correct"] = None if expected is None else is_solved(result.answers, expected)
        test.append(entry)
    # A search stopped by its wall-clock or memory cap, not its budget: its results may differ by machine.
    capped = sorted({a.info["capped"] for r in results for a in r.attempts if a.info and a.info.get("capped")})
    return {"task_id": task.id, "status": status, "error": error,
            "seconds": round(time.perf_counter() - started, 3), "capped": ", ".join(capped) or None, "test": test}


@contextmanager
def _time_limit(seconds: float | None):
    """SIGALRM-based limit (main thread on POSIX only; elsewhere no limit)."""
    usable = seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise TaskTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _attempts(records: dict[str, dict[str, Any]]) -> dict[str, list[list[np.ndarray]]]:
    return {tid: [[np.asarray(a, dtype=np.uint8) for a in t["answers"]] for t in r["test"]]
            for tid, r in records.items()}


def _running_score(records: dict[str, dict[str, Any]]) -> str:
    known = [r for r in records.values() if all(t["correct"] is not None for t in r["test"])]
    if not known:
        return ""
    score = sum(sum(t["correct"] for t in r["test"]) / len(r["test"]) for r in known) / len(known)
    return f"score {100 * score:.1f}%"


def summarize(tasks: Sequence[Task], records: dict[str, dict[str, Any]], meta: dict[str, Any], *,
              interrupted: bool = False) -> dict[str, Any]:
    done = [t for t in tasks if t.id in records]
    summary: dict[str, Any] = {
        **meta, "tasks": len(tasks), "finished": len(done),
        "errors": sum(records[t.id]["status"] == "error" for t in done),
        "test_inputs": sum(len(t.test) for t in done),
        "attempts": sum(len(x["attempts"]) for t in done for x in records[t.id]["test"]),
        "seconds": round(sum(records[t.id]["seconds"] for t in done), 3),
        "interrupted": interrupted,
    }
    if done and all(t.has_solutions for t in done):
        report = score_submission(_attempts({t.id: records[t.id] for t in done}), done)
        summary.update(scored_tasks=len(done), solved_tasks=sum(s.score == 1.0 for s in report.tasks),
                       solved_test_outputs=report.n_solved_outputs, task_score=report.task_score,
                       output_score=report.output_score,
                       score_note="task_score: per task (headline); output_score: per test output; "
                                  "over finished tasks, 2 attempts")
    return summary


def finish_merged(tasks: Sequence[Task], records: dict[str, dict[str, Any]], settings: dict[str, Any],
                  shown: dict[str, Any], *, interrupted: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The summary and report of a run joined from its shards (`hybrid-arc merge`): the run's
    `settings` (run.json's, without the shard) and, from a shard's summary `shown`, which models had
    random weights, in the order one run's summary has them."""
    from planner.report import render_report

    meta = {k: v for k, v in shown.items() if k in settings or k == "random_weights"}
    meta.update((k, v) for k, v in settings.items() if k not in meta)
    summary = summarize(tasks, records, meta, interrupted=interrupted)
    return summary, {REPORT: render_report(tasks, records, summary)}
