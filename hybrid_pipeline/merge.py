"""`hybrid-arc merge`: join the out dirs of one run's shards (`--shard K/N`) into one out dir.

The merged dir holds what one run over all the selected tasks would have written: `results.jsonl`
(each task once, in the order of the selection), `submission.json` (every task; placeholders where
a shard had not finished one), `summary.json` recomputed over all the tasks by the command's own
summary function, `report.html` for `plan` runs, and `run.json` with the run's settings (no shard),
so that `--resume` into the merged dir finishes what the shards left. Each file is written
atomically.

Refused, before a file is written (`runs.read_shards`): shards of different runs (settings that
change results, or the selection they were cut from), a shard given twice, a task in two shards,
a missing shard unless `partial`, an OUT that is one of the shards, and a non-empty OUT unless
`overwrite`.

Like the CLI, this module composes the commands: it imports each one's summary (plan's, the
baseline's, trm eval's) when it merges that command's runs, so merging plan runs loads no model code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Sequence

from hybrid_pipeline.arc.tasks import Task, load_tasks
from hybrid_pipeline.runs import (RUN_FILE, RunError, ShardDir, check_merge_target, jsonl_text, merged_settings,
                                  read_shards, shard_of, write_merged)

RESULTS, SUBMISSION, SUMMARY, REPORT = "results.jsonl", "submission.json", "summary.json", "report.html"
RUN_FILES = (RESULTS, SUBMISSION, SUMMARY, REPORT, RUN_FILE)
# trm eval's resume compares these (hybrid_pipeline/trm/evaluate.py, evaluate_checkpoint's open_run).
TRM_EVAL_KEYS = ("command", "weights_sha256", "views")

Records = dict[str, dict[str, Any]]


@dataclass
class MergedRun:
    """What `merge_runs` wrote."""

    out_dir: Path
    command: str
    data: str
    shards: list[int]
    count: int
    missing: list[int]
    tasks: int
    finished: int
    summary: dict[str, Any]
    files: list[str]

    def describe(self) -> str:
        given = f"{len(self.shards)} of {self.count} shards"
        if self.missing:
            given += f" (shard{'s' if len(self.missing) > 1 else ''} {', '.join(map(str, self.missing))} missing)"
        return (f"merged {given} of a {self.command} run on {self.data}: {self.finished} of {self.tasks} tasks "
                f"finished; wrote {', '.join(self.files)} in {self.out_dir}")


def merge_runs(out_dir: str | Path, shard_dirs: Sequence[str | Path], *, partial: bool = False,
               overwrite: bool = False) -> MergedRun:
    """Join `shard_dirs` into `out_dir` (see the module docstring); RunError (one line) when refused."""
    if not shard_dirs:
        raise RunError("no shard dir to merge")
    shards, missing = read_shards(shard_dirs, compare=_compare_keys, partial=partial)
    check_merge_target(out_dir, shards, overwrite=overwrite)
    first = shards[0]
    of = first.settings["shard_of"]
    command = of["command"]
    if command not in _FINISH:
        raise RunError(f"{first.path}: shards of '{command}' runs cannot be merged (only {', '.join(_FINISH)})")
    tasks = _selected_tasks(of, shards, complete=not missing)
    records = {tid: r for s in shards for tid, r in s.records.items() if tid in s.submission}
    submission = {t.id: next(s.submission[t.id] for s in shards if t.id in s.submission) for t in tasks}
    interrupted = any(s.summary is None or s.summary.get("interrupted") for s in shards)
    summary, extra = _FINISH[command](tasks, records, shards, interrupted)
    if missing:
        summary["missing_shards"] = missing
    run = {"settings": merged_settings(first), "versions": first.run.get("versions"),
           "git_commit": first.run.get("git_commit"), "merged_from": [str(s.path) for s in shards]}
    files = {RESULTS: jsonl_text(records[t.id] for t in tasks if t.id in records),
             SUBMISSION: json.dumps(submission) + "\n", SUMMARY: json.dumps(summary, indent=2) + "\n", **extra,
             RUN_FILE: json.dumps(run, indent=2) + "\n"}
    write_merged(out_dir, files, stale=RUN_FILES)
    return MergedRun(Path(out_dir), command, of["data"], [s.shard.index for s in shards], first.shard.count, missing,
                     len(tasks), sum(t.id in records for t in tasks), summary, list(files))


def _compare_keys(command: str) -> Iterable[str] | None:
    """The settings a command's resume compares, which shards of one run must share."""
    if command == "baseline":
        from hybrid_pipeline.baseline import RESUME_KEYS

        return RESUME_KEYS
    return TRM_EVAL_KEYS if command == "trm eval" else None


def _selected_tasks(of: dict[str, Any], shards: Sequence[ShardDir], *, complete: bool) -> list[Task]:
    """The shards' tasks in the order of the selection they were cut from (the data's own order:
    `--tasks` and `--limit` keep it)."""
    held = {tid for s in shards for tid in s.submission}
    tasks = [t for t in load_tasks(of["data"]).tasks if t.id in held]
    found = {t.id for t in tasks}
    for s in shards:
        lost = next((tid for tid in s.submission if tid not in found), None)
        if lost is not None:
            raise RunError(f"{s.path}: task {lost} is not in {of['data']} (or its file has a problem there now)")
    if complete and shard_of(tasks, command=of["command"], data=of["data"]) != of:
        raise RunError(f"{shards[0].path} and the other shards hold {len(tasks)} tasks, not the {of['tasks']} "
                       "they were cut from")
    return tasks


def _summary_source(shards: Sequence[ShardDir]) -> dict[str, Any]:
    """A shard's summary, for what the settings do not hold (the model's name, random weights)."""
    found = next((s.summary for s in shards if s.summary is not None), None)
    if found is None:
        raise RunError(f"none of the shards has a summary.json (each run was killed): rerun one with --resume "
                       f"first ({shards[0].path})")
    return found


def _plan(tasks: list[Task], records: Records, shards: Sequence[ShardDir],
          interrupted: bool) -> tuple[dict[str, Any], dict[str, str]]:
    from planner.report import render_report
    from planner.run import summarize

    settings, shown = merged_settings(shards[0]), _summary_source(shards)
    meta = {k: v for k, v in shown.items() if k in settings or k == "random_weights"}  # in the run's order
    meta.update((k, v) for k, v in settings.items() if k not in meta)
    summary = summarize(tasks, records, meta, interrupted=interrupted)
    return summary, {REPORT: render_report(tasks, records, summary)}


def _baseline(tasks: list[Task], records: Records, shards: Sequence[ShardDir],
              interrupted: bool) -> tuple[dict[str, Any], dict[str, str]]:
    from hybrid_pipeline.baseline import BaselineConfig, summarize
    from hybrid_pipeline.config import config_from_dict

    settings = {k: v for k, v in merged_settings(shards[0]).items() if k != "tasks"}  # the shard's own ids
    config = config_from_dict(BaselineConfig, settings, source=str(shards[0].path / RUN_FILE))
    shown = _summary_source(shards)
    model = SimpleNamespace(name=shown["backbone"], kind=shown["kind"], random_weights=shown["random_weights"])
    return summarize(records, tasks, config, model, interrupted=interrupted), {}


def _trm_eval(tasks: list[Task], records: Records, shards: Sequence[ShardDir],
              interrupted: bool) -> tuple[dict[str, Any], dict[str, str]]:
    from hybrid_pipeline.trm.evaluate import summarize

    shown = _summary_source(shards)
    return summarize(tasks, records, checkpoint=shown["checkpoint"], data_label=shown["data"],
                    views=shown["views_per_task"], interrupted=interrupted), {}


_FINISH: dict[str, Callable[..., tuple[dict[str, Any], dict[str, str]]]] = {
    "plan": _plan, "baseline": _baseline, "trm eval": _trm_eval}
