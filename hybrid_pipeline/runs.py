"""A run's output directory: what a rerun may continue, and what it must refuse.

The commands that append results per task (`plan`, `baseline`, `trm eval`) open their directory
with `open_run`, one rule for all of them:

- a fresh run never appends to or overwrites an earlier one: results there without `--resume` are
  refused, unless `--overwrite` says to replace them (the earlier results and settings are
  removed first; the other files are rewritten by the new run);
- `--resume` continues only a run made with the same settings: each one that differs is named
  (`attempts 2 -> 1`) and the run is refused; the task selection, workers and progress bars are not
  settings and may change;
- `--resume` with nothing to resume starts a fresh run and says so in one line, so a requeued job
  can run the same command line on first start and on restart;
- a resume under other versions of the package, torch or transformers goes on, with a warning;
- SIGTERM (what batch schedulers send) stops a command as Ctrl-C does (`stop_on_sigterm`); a run's
  loop (`finish_run`) lets the write in progress finish, writes the summary marked `interrupted`,
  and the exit code is 143 (130 for Ctrl-C);
- `--shard K/N` runs the tasks at positions K-1, K-1+N, K-1+2N, ... (counted from 0) of the
  selected list (`Shard`), so N machines with the same command line split it, each task in exactly
  one shard. The shard and the selection it was cut from (`shard_of`: command, data, task count,
  a digest of the ids in order) are recorded with the settings (`in_shard`), so a resume as another
  shard, or of another selection, is refused; `read_shards` and `write_merged` join the shards'
  out dirs into one (`hybrid-arc merge`).

The settings and versions (and the git commit of the source, when there is one) are recorded in
`run.json` beside the results, with the thread count (`machine`), which a resume may change.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from hybrid_pipeline.arc.files import atomic_write_json, atomic_write_text, read_jsonl
from hybrid_pipeline.arc.wording import plural
from hybrid_pipeline.config import changed_settings, with_implied

RUN_FILE = "run.json"
SHARD_KEYS = ("shard", "shard_of")  # what `in_shard` adds to a run's settings
T = TypeVar("T")


class RunError(ValueError):
    """A run that cannot start in its directory as asked; the message is one line saying what to change."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that every command stops the same way."""


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` in the main thread (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted_exit_code(exc: KeyboardInterrupt) -> int:
    """143 for SIGTERM, 130 for Ctrl-C (128 + the signal's number, the shell's convention)."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


def stop_exception(signum: int, message: str = "") -> KeyboardInterrupt:
    """What a signal raises: `Terminated` for SIGTERM, KeyboardInterrupt for SIGINT."""
    return Terminated(message) if signum == signal.SIGTERM else KeyboardInterrupt(message)


class HeldSignals:
    """SIGINT and SIGTERM held while the block runs in the main thread: `signum` says which came
    first (None: neither); inside `interruptible()` one raises at once, as it would without this."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._at_once = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> HeldSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is not signal.SIG_IGN:  # an ignored signal stays ignored
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = self.signum or signum
        if self._at_once:
            raise stop_exception(signum)

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        if self.signum:
            raise stop_exception(self.signum)
        self._at_once = True
        try:
            yield
        finally:
            self._at_once = False


class RunLoop:
    """The loop `finish_run` guards: `finished` is what its `finish` returned (the summary)."""

    def __init__(self) -> None:
        self.finished: Any = None

    @contextmanager
    def writing(self) -> Iterator[None]:
        """A signal that comes while the block writes a task's files stops the run after it."""
        with HeldSignals() as held:
            yield
        if held.signum:
            raise stop_exception(held.signum)


@contextmanager
def finish_run(out_dir: str | Path, finish: Callable[[bool], Any]) -> Iterator[RunLoop]:
    """The loop of a command that appends results per task, stopped alike by Ctrl-C and SIGTERM.

    A signal stops the block at once, except inside `loop.writing()`, which it lets finish. However
    the block ends, `finish(interrupted)` then runs with both signals held (it writes the summary,
    and the report where there is one) and its value is `loop.finished`. An interrupt is raised
    again saying that the files are valid and how to continue (130 / 143 by
    `interrupted_exit_code`); a signal that came during `finish` alone is raised after it.
    """
    loop = RunLoop()
    stop: KeyboardInterrupt | None = None
    with stop_on_sigterm():
        try:
            yield loop
        except KeyboardInterrupt as e:
            stop = e
        finally:
            with HeldSignals() as held:
                loop.finished = finish(stop is not None)
    if stop is not None:
        signum = signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT
        raise stop_exception(signum, f"every file in {out_dir} is valid; rerun with --resume to continue") from None
    if held.signum:
        raise stop_exception(held.signum, f"every file in {out_dir} is valid")


# --------------------------------------------------------------------------------------------------
# shards


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (1-based, as `--shard K/N` writes it): the tasks at positions
    index-1, index-1+count, ... of the selected list. Each position lands in exactly one shard."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`"2/4"` -> Shard(2, 4); RunError (one line) for anything but K/N with 1 <= K <= N."""
        k, sep, n = text.partition("/")
        if sep and k.strip().isdigit() and n.strip().isdigit():
            shard = cls(int(k), int(n))
            if 1 <= shard.index <= shard.count:
                return shard
        raise RunError(f"--shard {text}: expected K/N, shard K of N with 1 <= K <= N (e.g. 1/4)")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, position: int) -> bool:
        return position % self.count == self.index - 1

    def select(self, items: Sequence[T]) -> list[T]:
        return [item for i, item in enumerate(items) if self.holds(i)]


@dataclass
class ShardedTasks:
    """A shard of a selected task list, and what its run records beside its settings."""

    shard: Shard
    tasks: list[Any]
    settings: dict[str, Any]
    selected: int

    def describe(self) -> str:
        k, n = self.shard.index, self.shard.count
        return (f"shard {k} of {n}: {len(self.tasks)} of the {plural(self.selected, 'selected task')} (positions {k}, "
                f"{k + n}, {k + 2 * n}, ...)")


def take_shard(tasks: Sequence[Any], shard: Shard, *, command: str, data: str) -> ShardedTasks:
    """The tasks of `shard` (each has an `id`) and the settings that say which run they are a shard
    of; RunError when the shard would hold no task."""
    mine = shard.select(tasks)
    if not mine:
        raise RunError(f"--shard {shard}: only {plural(len(tasks), 'task is', 'tasks are')} selected, so shard "
                       f"{shard.index} would hold none; split them into at most {plural(len(tasks), 'shard')}")
    settings = {"shard": str(shard), "shard_of": shard_of(tasks, command=command, data=data)}
    return ShardedTasks(shard, mine, settings, len(tasks))


def shard_of(tasks: Sequence[Any], *, command: str, data: str) -> dict[str, Any]:
    """What a shard was cut from: the command, the data, and the selected tasks (count, ids digest)."""
    digest = hashlib.sha256("\n".join(t.id for t in tasks).encode()).hexdigest()[:16]
    return {"command": command, "data": data, "tasks": len(tasks), "ids_sha256": digest}


_SHARD_SETTINGS: ContextVar[dict[str, Any] | None] = ContextVar("shard_settings", default=None)


@contextmanager
def in_shard(sharded: ShardedTasks | None) -> Iterator[None]:
    """Within the block, `open_run` records the shard with a run's settings and a resume compares
    it (a resume as another shard, or with no shard, is refused). No shard: no change."""
    token = _SHARD_SETTINGS.set(sharded.settings if sharded else None)
    try:
        yield
    finally:
        _SHARD_SETTINGS.reset(token)


def package_version() -> str:
    """The installed distribution's version, else the package's `__version__`, else "unknown"."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hybrid-arc")
    except PackageNotFoundError:
        import hybrid_pipeline

        return getattr(hybrid_pipeline, "__version__", "unknown")


def versions() -> dict[str, str | None]:
    """The versions a run's results may depend on (read from package metadata, nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {"hybrid-arc": package_version()}
    for name in ("torch", "transformers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def machine() -> dict[str, Any]:
    """How this run uses the machine, recorded beside the settings (not among them: it changes speed,
    not results): {"threads": ...} when the command chose a thread count."""
    from hybrid_pipeline.threads import chosen

    choice = chosen()
    return {"threads": choice.to_dict()} if choice is not None else {}


def git_commit() -> str | None:
    """The commit of the source tree the package runs from, when it is a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def _warn(line: str) -> None:
    print(line, file=sys.stderr)


def warn(line: str) -> None:
    """A warning on stderr, in the one style of every command: `warning: ...`."""
    _warn(f"warning: {line}")


def warn_random_weights(parts: Sequence[str], instead: str) -> None:
    """The one warning for a run with untrained models (every command that can run with them says
    it so): their answers and scores are noise; `instead` says what gives trained ones."""
    warn(f"random weights in {', '.join(parts)}: this run checks the pipeline, its answers and scores are "
         f"noise; {instead} for trained models")


def open_run(out_dir: str | Path, settings: dict[str, Any], *, resume: bool, overwrite: bool = False,
             results: str = "results.jsonl", compare: Iterable[str] | None = None,
             implied: dict[str, Any] | None = None, say: Callable[[str], None] = _warn) -> bool:
    """Make `out_dir` ready for a run with `settings` and record them (with the shard, inside
    `in_shard`); True when it continues the results already there. `compare`: the settings that
    change results (default: all of them; the shard always); `implied`: the value of each setting
    added since older runs, which those runs ran with (`config.with_implied`).
    Raises RunError (one line) for a fresh run over results without `overwrite`, or a resume with
    other settings."""
    out = Path(out_dir)
    results_path = out / results
    current = json.loads(json.dumps({**settings, **(_SHARD_SETTINGS.get() or {})}))  # tuples are lists, as in the file
    if compare is not None:
        compare = [*compare, *SHARD_KEYS]
    if resume and overwrite:
        raise RunError("--resume continues the run in the out dir and --overwrite replaces it: pass one of them")
    if results_path.exists() and overwrite:
        say(f"overwriting the run in {out}")
        results_path.unlink()
        (out / RUN_FILE).unlink(missing_ok=True)
    if results_path.exists() and not resume:
        raise RunError(f"{results_path} already exists; pass --resume to continue that run, --overwrite to replace "
                       "it, or choose another --out")
    continuing = results_path.exists()
    if resume and not continuing:
        say(f"nothing to resume in {out}: starting a fresh run")
    if continuing:
        _check_settings(out, current, compare, implied or {}, say)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / RUN_FILE, {"settings": current, **machine(), "versions": versions(),
                                       "git_commit": git_commit()}, indent=2)
    return continuing


def kept_records(results_path: str | Path, tasks: Iterable[Any], continuing: bool) -> dict[str, dict[str, Any]]:
    """The records of `tasks` (by id) already in a results file, when the run continues; else none."""
    if not continuing:
        return {}
    wanted = {t.id for t in tasks}
    return {r["task_id"]: r for r in read_jsonl(results_path) if r.get("task_id") in wanted}


def _check_settings(out: Path, current: dict[str, Any], compare: Iterable[str] | None, implied: dict[str, Any],
                    say: Callable[[str], None]) -> None:
    path = out / RUN_FILE
    if not path.exists():
        say(f"warning: {out} records no settings (an older run): resuming without checking them")
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        before = with_implied(saved["settings"], implied)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunError(f"{path}: cannot read the settings of the run to resume ({e}); choose another --out") from None
    if compare is not None:
        before, current = ({k: d.get(k) for k in compare} for d in (before, current))
    changed = changed_settings(before, current)
    if changed:
        raise RunError(f"{out}: cannot resume with other settings than the run there ({'; '.join(changed)}); "
                       "choose another --out")
    now = versions()
    moved = [f"{k} {v} -> {now.get(k)}" for k, v in (saved.get("versions") or {}).items() if now.get(k) != v]
    if moved:
        say(f"warning: resuming {out} under other versions ({'; '.join(moved)}): earlier results may differ")



# --------------------------------------------------------------------------------------------------
# merging shards


@dataclass
class ShardDir:
    """One shard's out dir as `read_shards` found it."""

    path: Path
    shard: Shard
    run: dict[str, Any]                       # run.json: settings, versions, git commit
    records: dict[str, dict[str, Any]]        # results.jsonl by task id (the last line of a task wins)
    submission: dict[str, list[dict[str, Any]]]
    summary: dict[str, Any] | None            # None: the run was killed before it wrote one

    @property
    def settings(self) -> dict[str, Any]:
        return self.run["settings"]


def shard_dir(path: str | Path, *, results: str = "results.jsonl", submission: str = "submission.json",
              summary: str = "summary.json") -> ShardDir:
    """Read the out dir of a `--shard K/N` run; RunError (one line) when it is none."""
    path = Path(path)
    run_file = path / RUN_FILE
    try:
        run = json.loads(run_file.read_text(encoding="utf-8"))
        settings = run["settings"]
    except FileNotFoundError:
        raise RunError(f"{path}: no {RUN_FILE}; expected the out dir of a run") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunError(f"{run_file}: cannot read the run's settings ({e})") from None
    if not isinstance(settings.get("shard"), str) or not isinstance(settings.get("shard_of"), dict):
        raise RunError(f"{path}: not a shard (its run was not started with --shard K/N)")
    try:
        records = {r["task_id"]: r for r in read_jsonl(path / results)}
        held = json.loads((path / submission).read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise RunError(f"{path}: no {Path(e.filename).name}; the shard's run has not started") from None
    except ValueError as e:  # ARCDataError for a corrupt results line, or a corrupt submission
        raise RunError(f"{path}: {e}") from None
    summary_path = path / summary
    summary_json = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else None
    return ShardDir(path, Shard.parse(settings["shard"]), run, records, held, summary_json)


def read_shards(paths: Sequence[str | Path], *, compare: Callable[[str], Iterable[str] | None],
                partial: bool = False) -> tuple[list[ShardDir], list[int]]:
    """The shard dirs of one run, in shard order, and the numbers of the shards missing from them.

    `compare(command)`: the settings of that command's runs that change results (None: all); the
    shards must agree on them and on what they are shards of. Raises RunError (one line) for shards
    of different runs, a shard given twice, a task in two shards, and a missing shard unless
    `partial`."""
    shards = [shard_dir(p) for p in paths]
    first = shards[0]
    keys = compare(first.settings["shard_of"]["command"])
    for other in shards[1:]:
        changed = _merge_changes(first, other, keys)
        if changed:
            raise RunError(f"cannot merge {first.path} and {other.path}: their settings differ ({'; '.join(changed)})")
    seen: dict[int, ShardDir] = {}
    owner: dict[str, ShardDir] = {}
    for s in shards:
        if s.shard.index in seen:
            raise RunError(f"cannot merge {seen[s.shard.index].path} and {s.path}: both are shard {s.shard}")
        seen[s.shard.index] = s
        for task_id in s.submission:
            if task_id in owner:
                raise RunError(f"cannot merge {owner[task_id].path} and {s.path}: task {task_id} is in both")
            owner[task_id] = s
    count = first.shard.count
    missing = [k for k in range(1, count + 1) if k not in seen]
    if missing and not partial:
        names = ", ".join(map(str, missing))
        raise RunError(f"shard{'s' if len(missing) > 1 else ''} {names} of {count} "
                       f"{'are' if len(missing) > 1 else 'is'} missing; pass its out dir too, or --partial to "
                       "merge without it")
    return sorted(shards, key=lambda s: s.shard.index), missing


def _merge_changes(a: ShardDir, b: ShardDir, keys: Iterable[str] | None) -> list[str]:
    """What differs between two shards' settings but the shard itself (its number; the count counts)."""
    def comparable(s: ShardDir) -> dict[str, Any]:
        settings = {k: v for k, v in s.settings.items() if k != "shard"}
        if keys is not None:
            settings = {k: settings.get(k) for k in [*keys, "shard_of"]}
        return {**settings, "shards": s.shard.count}

    return changed_settings(comparable(a), comparable(b))


def merged_settings(shard: ShardDir) -> dict[str, Any]:
    """A shard's settings without the shard: those of the run the shards were cut from."""
    return {k: v for k, v in shard.settings.items() if k not in SHARD_KEYS}


def check_merge_target(out_dir: str | Path, shards: Sequence[ShardDir], *, overwrite: bool) -> None:
    """RunError unless `out_dir` may receive a merge: not one of the shards, empty unless `overwrite`."""
    out = Path(out_dir)
    for s in shards:
        if out.resolve() == s.path.resolve():
            raise RunError(f"{out} is one of the shards being merged; choose another OUT")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise RunError(f"{out} is not empty; pass --overwrite to replace the run files in it, or choose another OUT")


def write_merged(out_dir: str | Path, files: dict[str, str], stale: Iterable[str] = ()) -> None:
    """Write each of `files` (name -> text) atomically into `out_dir`, `RUN_FILE` last, and remove
    the `stale` run files an earlier run left there that this one does not write."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).unlink(missing_ok=True)  # while the others change, no run.json says they are one run
    for name in [*stale]:
        if name not in files:
            (out / name).unlink(missing_ok=True)
    for name, text in sorted(files.items(), key=lambda item: item[0] == RUN_FILE):
        atomic_write_text(out / name, text)


def jsonl_text(records: Iterable[dict[str, Any]]) -> str:
    """Records as results.jsonl holds them: one compact JSON object per line."""
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
