"""A run's output directory: what a rerun may continue, and what it must refuse.

The commands that append results per task (`plan`, `baseline`) open their directory with
`open_run`, one rule for all of them:

- a fresh run never appends to or overwrites an earlier one: results there without `--resume` are
  refused, unless `--overwrite` says to replace them (the earlier results and settings are
  removed first; the other files are rewritten by the new run);
- `--resume` continues only a run made with the same settings: each one that differs is named
  (`attempts 2 -> 1`) and the run is refused; the task selection, workers and progress bars are not
  settings and may change;
- `--resume` with nothing to resume starts a fresh run and says so in one line, so a requeued job
  can run the same command line on first start and on restart;
- a resume under other versions of the package, torch or transformers goes on, with a warning;
- SIGTERM (what batch schedulers send) stops a command as Ctrl-C does (`stop_on_sigterm`): the
  write in progress finishes, the summary says `interrupted`, and the exit code is 143 (130 for
  Ctrl-C).

The settings and versions (and the git commit of the source, when there is one) are recorded in
`run.json` beside the results.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from hybrid_pipeline.arc.files import atomic_write_json, read_jsonl
from hybrid_pipeline.config import changed_settings

RUN_FILE = "run.json"


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


def open_run(out_dir: str | Path, settings: dict[str, Any], *, resume: bool, overwrite: bool = False,
             results: str = "results.jsonl", compare: Iterable[str] | None = None,
             say: Callable[[str], None] = _warn) -> bool:
    """Make `out_dir` ready for a run with `settings` and record them; True when it continues the
    results already there. `compare`: the settings that change results (default: all of them).
    Raises RunError (one line) for a fresh run over results without `overwrite`, or a resume with
    other settings."""
    out = Path(out_dir)
    results_path = out / results
    current = json.loads(json.dumps(settings))  # as they come back from the file: tuples are lists
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
        _check_settings(out, current, compare, say)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / RUN_FILE, {"settings": current, "versions": versions(), "git_commit": git_commit()},
                      indent=2)
    return continuing


def kept_records(results_path: str | Path, tasks: Iterable[Any], continuing: bool) -> dict[str, dict[str, Any]]:
    """The records of `tasks` (by id) already in a results file, when the run continues; else none."""
    if not continuing:
        return {}
    wanted = {t.id for t in tasks}
    return {r["task_id"]: r for r in read_jsonl(results_path) if r.get("task_id") in wanted}


def _check_settings(out: Path, current: dict[str, Any], compare: Iterable[str] | None,
                    say: Callable[[str], None]) -> None:
    path = out / RUN_FILE
    if not path.exists():
        say(f"warning: {out} records no settings (an older run): resuming without checking them")
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        before = saved["settings"]
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

