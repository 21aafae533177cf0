"""`hybrid-arc merge`: join the out dirs of one run's shards (`--shard K/N`) into one out dir.

The merged dir holds what one run over all the selected tasks would have written: `results.jsonl`
(each task once, in the order of the selection), `submission.json` (every task; placeholders where
a shard had not finished one), `summary.json` recomputed over all the tasks by the command's own
summary function, the other files the command writes at its end (`report.html` for `plan`), and
`run.json` with the run's settings (no shard), so that `--resume` into the merged dir finishes what
the shards left. Each file is written atomically.

Refused, before a file is written (`runs.read_shards`): shards of different runs (settings that
change results, or the selection they were cut from), a shard given twice, a task in two shards,
a missing shard unless `partial`, an OUT that is one of the shards, and a non-empty OUT unless
`overwrite`.

What a merged run's summary holds is each command's own business: the caller passes, per command,
a `Mergeable` (its finisher, next to its own summary function, and the settings its resume
compares). `hybrid_pipeline.cli` imports a command's module only when it merges that command's
shards, so merging plan runs loads no model code; this module imports no command.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from hybrid_pipeline.arc.tasks import Task, load_tasks
from hybrid_pipeline.arc.wording import plural
from hybrid_pipeline.runs import (RUN_FILE, RunError, ShardDir, check_merge_target, jsonl_text, merged_settings,
                                  read_shards, shard_of, write_merged)

RESULTS, SUBMISSION, SUMMARY, REPORT = "results.jsonl", "submission.json", "summary.json", "report.html"
RUN_FILES = (RESULTS, SUBMISSION, SUMMARY, REPORT, RUN_FILE)

Records = dict[str, dict[str, Any]]


class Finisher(Protocol):
    """A command's end of a merged run: its summary, and the other files its run writes at the end
    (by name; plan's report). `settings` are the run's (run.json's, without the shard), `shown` a
    shard's summary, for what the settings do not hold (the model's name, random weights)."""

    def __call__(self, tasks: list[Task], records: Records, settings: dict[str, Any], shown: dict[str, Any], *,
                 interrupted: bool) -> tuple[dict[str, Any], dict[str, str]]: ...


@dataclass(frozen=True)
class Mergeable:
    """What `merge_runs` needs of a command whose shards it joins."""

    finish: Finisher
    resume_keys: Sequence[str] | None = None  # the settings its resume compares (None: all of them)


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
        given = f"{len(self.shards)} of {plural(self.count, 'shard')}"
        if self.missing:
            given += f" (shard{'s' if len(self.missing) > 1 else ''} {', '.join(map(str, self.missing))} missing)"
        return (f"merged {given} of a {self.command} run on {self.data}: {self.finished} of {plural(self.tasks, 'task')} "
                f"finished; wrote {', '.join(self.files)} in {self.out_dir}")


def merge_runs(out_dir: str | Path, shard_dirs: Sequence[str | Path], *,
               commands: Mapping[str, Callable[[], Mergeable]], partial: bool = False,
               overwrite: bool = False) -> MergedRun:
    """Join `shard_dirs` into `out_dir` (see the module docstring); RunError (one line) when refused.
    `commands`: for each command whose shards may be merged, what gives its `Mergeable`."""
    if not shard_dirs:
        raise RunError("no shard dir to merge")
    shards, missing = read_shards(shard_dirs, partial=partial, compare=lambda command: (
        commands[command]().resume_keys if command in commands else None))
    check_merge_target(out_dir, shards, overwrite=overwrite)
    first = shards[0]
    of = first.settings["shard_of"]
    command = of["command"]
    if command not in commands:
        raise RunError(f"{first.path}: shards of '{command}' runs cannot be merged (only {', '.join(commands)})")
    tasks = _selected_tasks(of, shards, complete=not missing)
    records = {tid: r for s in shards for tid, r in s.records.items() if tid in s.submission}
    submission = {t.id: next(s.submission[t.id] for s in shards if t.id in s.submission) for t in tasks}
    interrupted = any(s.summary is None or s.summary.get("interrupted") for s in shards)
    summary, extra = commands[command]().finish(tasks, records, merged_settings(first), _summary_source(shards),
                                                interrupted=interrupted)
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
