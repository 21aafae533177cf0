"""The training loop every trainer of the project runs on (the TRM's and the hybrid's joint one).

A trainer (see `Trainer`) supplies what differs: the model and optimisers, one optimiser step, its
metrics, what a checkpoint holds, the evaluation and the export. `run_training` owns the rest:

Out dir. A fresh run into a directory that holds a training run (any of `RUN_FILES`) is refused
unless `overwrite`, which removes those files first (nothing else there). A resume continues from
`checkpoints/latest.json` and refuses settings that would make it another run, naming each one
(`lr 0.001 -> 0.5`), before any file is touched; only `RESUME_FREE_KEYS` (and what a trainer adds)
may change. A resume with no checkpoint to continue starts a fresh run and says so in one line, so
a requeued job can run the same command line on first start and on restart.

Cadence. Every `log_every` steps (and at the last) one line of metrics goes to `train_log.jsonl`
and to accelerate's trackers; every `eval_every` steps (and at the last) the trainer evaluates,
into the same line; every `checkpoint_every` steps (and at the last) a checkpoint is written. The
log holds one line per step at most: a resume cuts it back to its checkpoint's step (rewritten
atomically), and a checkpoint records the line its step still owes, so that the resume writes it.
The first line after a resume holds the means of the steps since the checkpoint (a trainer's
running sums are not checkpointed), so it equals the uninterrupted run's where checkpoints fall
on logged steps.

Checkpoints. `checkpoints/step-NNNNNNN/` holds the trainer's files and `loop_state.json`; it is
written under a scratch name that every process shares, renamed when whole, and `latest.json`
moves only after; the last `keep_checkpoints` are kept. A kill at any moment leaves the previous
checkpoint or the new one where `--resume` looks.

Stopping. `time_limit_s` (wall-clock seconds of this invocation's training, from after loading)
ends the run like a completed one: last checkpoint, evaluation, export; a resume may raise it. SIGINT and SIGTERM take effect at the end of the step in
progress (in a single process an evaluation in progress is cut short at once): a checkpoint of
that step is written, and `KeyboardInterrupt` or `runs.Terminated` is raised, which the CLI turns
into exit code 130 or 143. Every process agrees on both before any of them stops, or the others
would wait for it forever. A resume of a finished run changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from hybrid_pipeline.arc.files import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from hybrid_pipeline.config import ConfigError, changed_settings, config_to_dict, flat_settings, with_implied
from hybrid_pipeline.runs import HeldSignals, RunError, Terminated, machine, stop_exception

LATEST_NAME = "latest.json"  # checkpoints/latest.json: {"name": "step-NNNNNNN", "step": N}
LOOP_STATE_NAME = "loop_state.json"  # in each checkpoint: {"step": N, "owed": the log line still to write}
LOG_NAME = "train_log.jsonl"
CONFIG_NAME = "train_config.json"
RUN_FILES = ("checkpoints", LOG_NAME, CONFIG_NAME, "final", "summary.json")
# Settings a resume may change: they decide when to log, evaluate, keep and stop, and where files
# are, not what a step computes. Each trainer adds its own (max_steps where its lr does not follow it).
RESUME_FREE_KEYS = ("time_limit_s", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints",
                    "out_dir", "cache_dir")


class LoopConfig(Protocol):
    """The fields of a trainer's config that the loop reads."""

    out_dir: str
    batch_size: int  # global, over all processes
    max_steps: int
    time_limit_s: float | None
    log_every: int
    eval_every: int  # 0: only at the end
    checkpoint_every: int
    keep_checkpoints: int


class Trainer(Protocol):
    """What a trainer supplies. Every process calls every method, in the same order, so a method
    may run collectives; where only the main process should write, the method checks."""

    name: str  # "trm", "joint": the progress bar and accelerate's tracker project
    state_name: str  # a file every complete checkpoint of this trainer holds
    run_files: tuple[str, ...]  # its files in out_dir besides `RUN_FILES` (removed by `overwrite`)
    model: Any  # the trained model (unwrapped), for callers in the same process

    def accelerator_kwargs(self) -> dict[str, Any]: ...
    def prepare(self, accelerator: Any, checkpoint: Path | None, say: Callable[[str], None]) -> None:
        """Build data, model and optimisers; load `checkpoint` when resuming."""
    def train_step(self, step: int) -> None:
        """One optimiser step (`step` counts from 0), adding to the metrics since the last `metrics`."""
    def metrics(self) -> dict[str, Any]:
        """The metrics of the steps since the last call (then cleared), for the log line."""
    def save(self, directory: Path, step: int) -> None:
        """Write the checkpoint's files into `directory` (it exists)."""
    def evaluate(self, final: bool) -> dict[str, Any] | None:
        """Held-out scores (on the main process; None elsewhere or without held-out tasks)."""
    def logged_eval(self, result: dict[str, Any]) -> dict[str, Any]:
        """What of an evaluation goes into the log line and the summary."""
    def export(self, directory: Path) -> None:
        """Write the final export (atomically) to `directory`."""
    def summary(self, eval_result: dict[str, Any] | None) -> dict[str, Any]:
        """Fields the trainer adds to summary.json, the final evaluation's among them ("eval")."""


@dataclass
class TrainResult:
    final_dir: Path  # the export; `checkpoints/` when `stop_after` ended the call first
    steps: int
    last_log: dict[str, Any]  # the last line of metrics
    eval: dict[str, Any] | None  # the final evaluation, as the trainer returned it
    is_main_process: bool = True  # under `accelerate launch`, only one process should report
    model: Any = None  # the trained model (unwrapped)


def batch_rows(index: int, batch_size: int, n: int, seed: int) -> np.ndarray:
    """Rows (of `n`) of global batch `index`: consecutive slices of one seeded permutation per
    epoch, a function of the index alone, so a resume needs no data-loader state."""
    positions = np.arange(index * batch_size, (index + 1) * batch_size)
    epochs, offsets = np.divmod(positions, n)
    rows = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):
        order = np.random.default_rng([seed, int(epoch)]).permutation(n)
        rows[epochs == epoch] = order[offsets[epochs == epoch]]
    return rows


def process_share(rows: np.ndarray, accelerator: Any) -> np.ndarray:
    """This process's slice of a global batch's rows."""
    local = len(rows) // accelerator.num_processes
    return rows[accelerator.process_index * local:(accelerator.process_index + 1) * local]


# --------------------------------------------------------------------------------------------------
# the out dir


def latest_checkpoint(out_dir: str | os.PathLike, state_name: str = LOOP_STATE_NAME) -> Path | None:
    """The checkpoint directory that `out_dir/checkpoints/latest.json` names; None when there is none.

    A pointer that is not JSON, or names a directory without `state_name` (someone deleted it:
    resuming would silently restart), is a RunError.
    """
    pointer = Path(out_dir) / "checkpoints" / LATEST_NAME
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text())["name"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise RunError(f"{pointer}: not a checkpoint pointer (expected {{\"name\": \"step-...\"}})") from None
    path = pointer.parent / name
    if not (path / state_name).is_file():
        raise RunError(f"{pointer}: names {name}, but {path / state_name} is missing")
    return path


def loop_state(checkpoint: Path) -> dict[str, Any]:
    """{"step": N, "owed": line or None} of a checkpoint (older ones have only latest.json's step)."""
    path = checkpoint / LOOP_STATE_NAME
    if path.is_file():
        return json.loads(path.read_text())
    return {"step": int(json.loads((checkpoint.parent / LATEST_NAME).read_text())["step"]), "owed": None}


def check_out_dir(out_dir: Path, settings: dict[str, Any], free: Sequence[str], *, resume: bool,
                  overwrite: bool, state_name: str = LOOP_STATE_NAME,
                  implied: dict[str, Any] | None = None) -> tuple[Path | None, bool]:
    """(the checkpoint to resume from, whether the run files there are to be removed first), after
    refusing what `run_training` refuses (see the module's docstring). `implied`: the value of each
    setting added since older runs, which those runs ran with (`config.with_implied`). Reads files,
    writes none."""
    if resume and overwrite:
        raise RunError("--resume continues the run in out_dir and --overwrite replaces it: pass one of them")
    checkpoint = latest_checkpoint(out_dir, state_name)
    holds_run = any((out_dir / name).exists() for name in RUN_FILES)
    if not resume:
        if holds_run and not overwrite:
            raise RunError(f"{out_dir} holds a training run; pass --resume to continue it, --overwrite to "
                           "replace it, or choose another out_dir")
        return None, holds_run
    if checkpoint is None:
        return None, holds_run  # nothing to continue: what a run left before its first checkpoint goes
    saved_path = out_dir / CONFIG_NAME
    if not saved_path.is_file():
        return checkpoint, False
    try:
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunError(f"{saved_path}: cannot read the settings of the run to resume ({e})") from None
    changed = changed_settings(with_implied(saved, implied or {}), settings, free)
    if changed:
        raise RunError(f"{out_dir}: cannot resume with other settings than the run there "
                       f"({'; '.join(changed)}); resume with the same values or use a new out_dir")
    return checkpoint, False


def remove_run(out_dir: Path, names: Sequence[str] = RUN_FILES) -> None:
    """Remove a training run's files (`names`) from `out_dir`; nothing else there."""
    for name in names:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def cut_log(path: Path, step: int, *, keep_step: bool) -> list[dict[str, Any]]:
    """Rewrite the log (atomically) without the lines after `step` (and `step`'s own unless
    `keep_step`): those steps are about to run again. Returns the lines kept."""
    if not path.exists():
        return []
    kept = [r for r in read_jsonl(path) if r.get("step", 0) < step or (keep_step and r.get("step") == step)]
    atomic_write_text(path, "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in kept))
    return kept


# --------------------------------------------------------------------------------------------------
# the loop


def run_training(trainer: Trainer, config: LoopConfig, *, free: Sequence[str] = RESUME_FREE_KEYS,
                 resume: bool = False, overwrite: bool = False, progress: bool = True,
                 stop_after: int | None = None, implied: dict[str, Any] | None = None) -> TrainResult:
    """Train with `trainer` under `config`'s cadence (see the module's docstring); `free`: the
    settings a resume may change; `implied`: what older runs ran with for settings they did not
    record (`check_out_dir`). `stop_after` ends the call after that many steps, without the
    final export: tests use it for a kill between checkpoints."""
    out_dir = Path(config.out_dir)
    settings = json.loads(json.dumps(config_to_dict(config)))  # as the file holds them: tuples are lists
    checkpoint, remove = check_out_dir(out_dir, settings, free, resume=resume, overwrite=overwrite,
                                       state_name=trainer.state_name, implied=implied)
    run = _Run(trainer, config, settings, checkpoint, progress)
    try:
        if run.main and resume and checkpoint is None:
            print(f"nothing to resume in {out_dir}: starting a fresh run", file=sys.stderr)
        elif run.main and remove:
            print(f"overwriting the training run in {out_dir}", file=sys.stderr)
        if run.main and remove:
            remove_run(out_dir, RUN_FILES + trainer.run_files)
        run.accelerator.wait_for_everyone()
        run.start()
        first = run.step
        with HeldSignals() as run.signals:
            if not run.loop(stop_after):
                return run.result(out_dir / "checkpoints", None)
        if run.step == first and run.eval_result is None and run.finished_before():
            return run.result(out_dir / "final", None)  # a resume of a finished run changes nothing
        return run.finish()
    finally:
        # Tear the process group down before the interpreter exits: a gloo group left to die with
        # the process can abort a rank at exit ("terminate called without an active exception").
        run.accelerator.end_training()


class _Run:
    """One invocation of `run_training`: its accelerator, step, clock and log."""

    def __init__(self, trainer: Trainer, config: LoopConfig, settings: dict[str, Any],
                 checkpoint: Path | None, progress: bool) -> None:
        from accelerate import Accelerator

        self.trainer, self.config, self.settings, self.checkpoint = trainer, config, settings, checkpoint
        self.out_dir = Path(config.out_dir)
        self.log_path = self.out_dir / LOG_NAME
        self.trackers, self.missing_trackers = available_trackers(getattr(config, "log_with", ()))
        self.accelerator = Accelerator(log_with=self.trackers or None, project_dir=str(self.out_dir),
                                       **trainer.accelerator_kwargs())
        self.main = self.accelerator.is_main_process
        self.world = self.accelerator.num_processes
        if config.batch_size % self.world:
            raise ConfigError(f"batch_size {config.batch_size} must divide evenly over {self.world} processes")
        self.progress = progress and self.main
        self.step, self.max_steps = 0, config.max_steps
        self.owed: dict[str, Any] | None = None  # the log line of `step`, still to write
        self.saved_step: int | None = None  # the step of the checkpoint this invocation wrote last
        self.last_log: dict[str, Any] = {}
        self.eval_result: dict[str, Any] | None = None
        self.signals = HeldSignals()
        self.started = time.perf_counter()

    def say(self, line: str) -> None:
        if self.main:
            print(line)

    def start(self) -> None:
        """Build the trainer's parts, load the checkpoint, record the settings, cut the log back."""
        self.trainer.prepare(self.accelerator, self.checkpoint, self.say)
        kept: list[dict[str, Any]] = []
        if self.checkpoint is not None:
            state = loop_state(self.checkpoint)
            self.step, self.owed = int(state["step"]), state["owed"]
            self.saved_step = self.step
            self.say(f"resuming at step {self.step} from {self.checkpoint}")
        if self.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out_dir / CONFIG_NAME, self.settings, indent=2)
            kept = cut_log(self.log_path, self.step, keep_step=self.owed is None)
            if self.missing_trackers:
                self.say(f"note: tracker(s) {', '.join(self.missing_trackers)} not installed; logging to "
                         f"{self.log_path} only")
        self.last_log = next(({k: v for k, v in r.items() if k != "eval"} for r in reversed(kept)
                              if set(r) - {"step", "eval"}), {})
        if self.trackers:
            self.accelerator.init_trackers(self.trainer.name, config=flat_scalars(self.settings))
        self.accelerator.wait_for_everyone()
        self.started = time.perf_counter()  # the time limit counts training, not loading

    def loop(self, stop_after: int | None) -> bool:
        """Train up to max_steps; False when `stop_after` ended it first."""
        from tqdm.auto import tqdm

        first = self.step
        self.bar = tqdm(total=self.config.max_steps, initial=self.step, desc=f"train {self.trainer.name}",
                        disable=not self.progress)
        try:
            while True:
                if self.owed is not None:
                    self.settle()
                if self.step >= self.max_steps:
                    return True
                if stop_after is not None and self.step - first >= stop_after:
                    return False
                self.trainer.train_step(self.step)
                self.step += 1
                self.bar.update(1)
                self.after_step()
        finally:
            self.bar.close()

    def after_step(self) -> None:
        """Agree on stopping, owe the step's log line, checkpoint when due or stopped."""
        late, signum = self.agree()
        if late:
            self.max_steps = self.step  # out of time: finish like a completed run
        config, step, final = self.config, self.step, self.step == self.max_steps
        log_due = step % config.log_every == 0 or final
        eval_due = bool(config.eval_every and step % config.eval_every == 0) or final
        if log_due or eval_due:
            metrics = self.trainer.metrics() if log_due else None
            if metrics is not None:
                metrics["elapsed_s"] = round(time.perf_counter() - self.started, 2)
            self.owed = {"step": step, "metrics": metrics, "eval": eval_due}
        if signum and self.owed is not None and not self.owed["eval"]:
            self.settle()  # the line now; an evaluation due is left to the resume, not to the grace period
        if signum:
            self.stop(signum)
        if step % config.checkpoint_every == 0 or final:
            self.save()

    def stop(self, signum: int) -> None:
        """Checkpoint this step (unless done), with the line it still owes, and raise the signal's exception."""
        if self.saved_step != self.step:
            self.save()
        raise stop_exception(signum, f"checkpoint of step {self.step} written to "
                                     f"{self.out_dir / 'checkpoints' / _step_name(self.step)}; rerun with "
                                     "--resume to continue")

    def agree(self) -> tuple[bool, int]:
        """(out of time, the signal that came) as every process sees them: the max over processes."""
        import torch

        late = self.config.time_limit_s is not None and time.perf_counter() - self.started >= self.config.time_limit_s
        if self.world == 1:
            return late, self.signals.signum or 0
        flags = torch.tensor([float(late), float(self.signals.signum or 0)], device=self.accelerator.device)
        flags = self.accelerator.reduce(flags, reduction="max").cpu()
        return bool(flags[0] > 0), int(flags[1])

    def settle(self) -> None:
        """Evaluate if the owed line wants it, write the line, and note in the step's checkpoint that
        the line is written."""
        owed, self.owed = self.owed, None
        line: dict[str, Any] = {"step": owed["step"]}
        if owed["metrics"] is not None:
            line.update(owed["metrics"])
            self.last_log = dict(line)
        if owed["eval"]:
            final = owed["step"] == self.max_steps
            if self.world == 1:  # processes that evaluate while others wait must stop together
                try:
                    with self.signals.interruptible():
                        self.eval_result = self.trainer.evaluate(final)
                except KeyboardInterrupt:  # the weights are still those of the step: keep them
                    self.owed = owed
                    self.stop(self.signals.signum or signal.SIGINT)
            else:
                self.eval_result = self.trainer.evaluate(final)
            if self.eval_result is not None:
                line["eval"] = self.trainer.logged_eval(self.eval_result)
        if not self.main:
            return
        if len(line) > 1:  # an evaluation due with nothing to evaluate (no eval data) leaves no line
            append_jsonl(self.log_path, line)
            if self.trackers:
                self.accelerator.log(tracker_values(line), step=owed["step"])
        if owed["metrics"] is not None:
            self.bar.set_postfix({k: f"{owed['metrics'][k]:.4f}" for k in ("loss", "exact_accuracy")
                             if isinstance(owed["metrics"].get(k), float)})
        if self.saved_step == owed["step"]:
            atomic_write_json(self.out_dir / "checkpoints" / _step_name(owed["step"]) / LOOP_STATE_NAME,
                              {"step": owed["step"], "owed": None})

    def save(self) -> None:
        """A checkpoint of this step: written by every process into one scratch directory, renamed
        by the main process when whole, then `latest.json` and the rotation."""
        checkpoints, name = self.out_dir / "checkpoints", _step_name(self.step)
        scratch = checkpoints / f".{name}.partial"  # the same name on every process
        if self.main:
            shutil.rmtree(scratch, ignore_errors=True)  # left by a kill during an earlier save
            scratch.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        self.trainer.save(scratch, self.step)
        self.accelerator.wait_for_everyone()
        self.saved_step = self.step
        if not self.main:
            return
        atomic_write_json(scratch / LOOP_STATE_NAME, {"step": self.step, "owed": self.owed})
        if (checkpoints / name).exists():
            shutil.rmtree(checkpoints / name)
        os.replace(scratch, checkpoints / name)
        atomic_write_json(checkpoints / LATEST_NAME, {"name": name, "step": self.step})
        for old in sorted(checkpoints.glob("step-*"))[:-self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def finished_before(self) -> bool:
        """Whether an earlier invocation wrote the export and summary of this step."""
        summary = self.out_dir / "summary.json"
        if not ((self.out_dir / "final").is_dir() and summary.is_file()):
            return False
        return json.loads(summary.read_text()).get("steps") == self.step

    def finish(self) -> TrainResult:
        """The export and summary.json, after the last step's line and checkpoint."""
        final_dir = self.out_dir / "final"
        self.trainer.export(final_dir)
        if self.main:
            atomic_write_json(self.out_dir / "summary.json", {
                "steps": self.step, "final_dir": str(final_dir), "last_log": self.last_log,
                **self.trainer.summary(self.eval_result), "elapsed_s": round(time.perf_counter() - self.started, 2),
                **machine()}, indent=2)
        self.accelerator.wait_for_everyone()
        return self.result(final_dir, self.eval_result)

    def result(self, final_dir: Path, eval_result: dict[str, Any] | None) -> TrainResult:
        return TrainResult(final_dir, self.step, self.last_log, eval_result, self.main, self.trainer.model)


def _step_name(step: int) -> str:
    return f"step-{step:07d}"


# --------------------------------------------------------------------------------------------------
# trackers


def available_trackers(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """(trackers accelerate can use here, the ones asked for that are not installed)."""
    if not names:
        return [], []
    from accelerate.utils import is_tensorboard_available, is_wandb_available

    checks = {"tensorboard": is_tensorboard_available, "wandb": is_wandb_available}
    have = [n for n in names if n in checks and checks[n]()]
    return have, [n for n in names if n not in have]


def flat_scalars(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"a.b": scalar}: trackers' hparams take numbers, strings and bools only."""
    return {k: v if isinstance(v, (int, float, str, bool)) else json.dumps(v)
            for k, v in flat_settings(values, prefix).items()}


def tracker_values(line: dict[str, Any]) -> dict[str, float]:
    """A log line as tracker scalars: `train/loss`, and `eval/trm_task_score` for nested scores."""
    values = {f"train/{k}": v for k, v in line.items() if isinstance(v, float)}
    flat = flat_settings(line.get("eval") or {})
    values.update({f"eval/{k.replace('.', '_')}": v for k, v in flat.items() if isinstance(v, float)})
    return values
