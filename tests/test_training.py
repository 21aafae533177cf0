"""The one training loop (`hybrid_pipeline.training`), driven by a trainer with no model in it.

What users rely on: one log line per logged or evaluated step, even across kills and resumes; the
last `keep_checkpoints` checkpoints and a pointer to the newest; a time limit that ends the run
like a completed one; SIGINT / SIGTERM take effect at the end of a step, with a checkpoint of it;
a resume that refuses other settings before touching a file; a fresh run that never mixes with an
old one.
"""

from __future__ import annotations

import json
import os
import re
import signal
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from hybrid_pipeline.runs import RunError, Terminated, interrupted_exit_code
from hybrid_pipeline.training import latest_checkpoint, run_training


@dataclass
class CountingConfig:
    out_dir: str
    batch_size: int = 2
    max_steps: int = 7
    time_limit_s: float | None = None
    log_every: int = 2
    eval_every: int = 3
    checkpoint_every: int = 2
    keep_checkpoints: int = 2
    rate: float = 1.0  # what a step computes: a resume must not change it


class CountingTrainer:
    """A "model" that is one number: each step adds `rate * (step + 1)`. Hooks let a test break in."""

    name, state_name, run_files = "counting", "state.json", ()

    def __init__(self, config: CountingConfig, *, fail_eval_at: int | None = None, signal_at: int | None = None,
                 signal_eval_at: int | None = None, signum: int = signal.SIGTERM) -> None:
        self.config, self.fail_eval_at, self.signal_at, self.signum = config, fail_eval_at, signal_at, signum
        self.signal_eval_at = signal_eval_at
        self.model, self.steps_run = None, []

    def accelerator_kwargs(self):
        return {}

    def prepare(self, accelerator, checkpoint, say):
        self.accelerator = accelerator
        self.weight = json.loads((checkpoint / self.state_name).read_text())["weight"] if checkpoint else 0.0
        self.since = []

    def train_step(self, step):
        if step == self.signal_at:
            os.kill(os.getpid(), self.signum)  # arrives mid-step: the step still finishes
        self.weight += self.config.rate * (step + 1)
        self.since.append(self.weight)
        self.steps_run.append(step)

    def metrics(self):
        line, self.since = {"loss": sum(self.since) / len(self.since)}, []
        return line

    def save(self, directory, step):
        (directory / self.state_name).write_text(json.dumps({"weight": self.weight}))

    def evaluate(self, final):
        if self.fail_eval_at is not None and self.steps_run[-1] + 1 == self.fail_eval_at:
            raise RuntimeError("killed during the evaluation")
        if self.signal_eval_at is not None and self.steps_run[-1] + 1 == self.signal_eval_at:
            os.kill(os.getpid(), self.signum)  # with one process, an evaluation stops at once
        return {"weight": self.weight, "final": final, "detail": "not logged"}

    def logged_eval(self, result):
        return {k: v for k, v in result.items() if k != "detail"}

    def export(self, directory):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "weight.json").write_text(json.dumps({"weight": self.weight}))

    def summary(self, eval_result):
        return {"eval": eval_result}


def train(config, **kwargs):
    hooks = {k: kwargs.pop(k) for k in ("fail_eval_at", "signal_at", "signal_eval_at", "signum") if k in kwargs}
    trainer = CountingTrainer(config, **hooks)
    return run_training(trainer, config, progress=False, **kwargs), trainer


def log_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def without_times(lines: list[dict]) -> list[dict]:
    return [{k: v for k, v in line.items() if k != "elapsed_s"} for line in lines]


def weight(out: Path) -> float:
    return json.loads((out / "final" / "weight.json").read_text())["weight"]


def test_cadence_one_line_per_logged_or_evaluated_step_and_the_last_checkpoints_kept(tmp_path):
    result, _ = train(CountingConfig(str(tmp_path)))
    log = log_of(tmp_path)
    # log every 2 steps, evaluate every 3, and both at the last step: one line per step
    assert [line["step"] for line in log] == [2, 3, 4, 6, 7]
    assert [line["step"] for line in log if "loss" in line] == [2, 4, 6, 7]
    assert [line["step"] for line in log if "eval" in line] == [3, 6, 7]
    assert log[-1]["eval"] == {"weight": 28.0, "final": True}  # what the trainer chose to log
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest.json", "step-0000006",
                                                                          "step-0000007"]
    assert latest_checkpoint(tmp_path).name == "step-0000007"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 7 and summary["eval"]["detail"] == "not logged"  # the trainer's summary
    assert summary["last_log"] == {k: v for k, v in log[-1].items() if k != "eval"}
    assert result.steps == 7 and weight(tmp_path) == 28.0 and result.eval["final"]


def test_an_evaluation_due_with_nothing_to_evaluate_writes_no_line(tmp_path):
    class NothingToEvaluate(CountingTrainer):
        def evaluate(self, final):
            return None  # as a trainer without evaluation data answers

    config = CountingConfig(str(tmp_path))
    run_training(NothingToEvaluate(config), config, progress=False)
    assert [line["step"] for line in log_of(tmp_path)] == [2, 4, 6, 7]  # steps 3 and 6's evaluations: none
    assert all("loss" in line for line in log_of(tmp_path))


def test_a_kill_between_a_checkpoint_and_its_log_line_writes_the_line_once_on_resume(tmp_path):
    whole, _ = train(CountingConfig(str(tmp_path / "whole")))
    config = CountingConfig(str(tmp_path / "run"))
    # Step 6 is checkpointed, then its evaluation dies: the log still lacks step 6's line.
    with pytest.raises(RuntimeError, match="killed during the evaluation"):
        train(config, fail_eval_at=6)
    assert latest_checkpoint(tmp_path / "run").name == "step-0000006"
    assert [line["step"] for line in log_of(tmp_path / "run")] == [2, 3, 4]
    resumed, trainer = train(config, resume=True)
    assert trainer.steps_run == [6]  # step 6 is not trained again: only its line and evaluation are redone
    assert without_times(log_of(tmp_path / "run")) == without_times(log_of(tmp_path / "whole"))
    assert weight(tmp_path / "run") == weight(tmp_path / "whole")


def test_a_resume_cuts_the_log_back_to_its_checkpoint(tmp_path):
    config = CountingConfig(str(tmp_path), checkpoint_every=3, eval_every=0)
    train(config, stop_after=5)  # lines of steps 2 and 4; the checkpoint is step 3
    assert [line["step"] for line in log_of(tmp_path)] == [2, 4]
    _, trainer = train(config, resume=True)
    assert trainer.steps_run == [3, 4, 5, 6]
    assert [line["step"] for line in log_of(tmp_path)] == [2, 4, 6, 7]  # step 4 once, as trained again


def test_the_time_limit_ends_the_run_like_a_completed_one_and_a_resume_goes_on(tmp_path):
    config = CountingConfig(str(tmp_path), time_limit_s=0.0)
    result, _ = train(config)
    assert result.steps == 1  # checkpoint, evaluation, export, summary: as at max_steps
    assert latest_checkpoint(tmp_path).name == "step-0000001"
    assert log_of(tmp_path)[-1]["eval"]["final"] and weight(tmp_path) == 1.0
    resumed, trainer = train(replace(config, time_limit_s=None), resume=True)  # the limit may change
    assert resumed.steps == 7 and trainer.steps_run == [1, 2, 3, 4, 5, 6] and weight(tmp_path) == 28.0
    assert [line["step"] for line in log_of(tmp_path)] == [1, 2, 3, 4, 6, 7]


@pytest.mark.parametrize("signum, raised, code", [(signal.SIGTERM, Terminated, 143),
                                                  (signal.SIGINT, KeyboardInterrupt, 130)])
def test_a_signal_takes_effect_when_the_step_ends_with_a_checkpoint_of_it(tmp_path, signum, raised, code):
    # every step logged: a line after a resume averages only the steps since its checkpoint
    config = CountingConfig(str(tmp_path / "run"), log_every=1, checkpoint_every=100)
    with pytest.raises(raised, match="checkpoint of step 5 written to .*step-0000005; rerun with --resume") as stop:
        train(config, signal_at=4, signum=signum)  # the signal comes during step 5 (index 4)
    assert interrupted_exit_code(stop.value) == code
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the loop's handlers are gone
    assert latest_checkpoint(tmp_path / "run").name == "step-0000005"
    assert [line["step"] for line in log_of(tmp_path / "run")] == [1, 2, 3, 4, 5]
    _, trainer = train(config, resume=True)
    assert trainer.steps_run == [5, 6]
    whole, _ = train(replace(config, out_dir=str(tmp_path / "whole")))
    assert without_times(log_of(tmp_path / "run")) == without_times(log_of(tmp_path / "whole"))
    assert weight(tmp_path / "run") == weight(tmp_path / "whole")


def test_a_resume_refuses_other_settings_naming_each_before_touching_a_file(tmp_path):
    config = CountingConfig(str(tmp_path), max_steps=4)
    train(config)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(RunError, match=r"cannot resume with other settings than the run there "
                                       r"\(max_steps 4 -> 5; rate 1.0 -> 2.0\)"):
        train(replace(config, max_steps=5, rate=2.0), resume=True)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    # what decides only when to log, evaluate, keep or stop may change
    result, _ = train(replace(config, log_every=1, eval_every=0, keep_checkpoints=1, time_limit_s=60.0), resume=True)
    assert result.steps == 4


def test_a_fresh_run_into_a_run_is_refused_and_overwrite_removes_only_the_run(tmp_path):
    config = CountingConfig(str(tmp_path), max_steps=4)
    train(config)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match=re.escape(f"{tmp_path} holds a training run; pass --resume to continue "
                                                 "it, --overwrite to replace it")):
        train(config)
    with pytest.raises(RunError, match="pass one of them"):
        train(config, resume=True, overwrite=True)
    train(replace(config, max_steps=2), overwrite=True)
    assert [line["step"] for line in log_of(tmp_path)] == [2]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest.json", "step-0000002"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_resume_with_nothing_to_resume_starts_fresh_and_says_so_in_one_line(tmp_path, capsys):
    config = CountingConfig(str(tmp_path), max_steps=4, checkpoint_every=3)
    train(config, stop_after=2)  # killed before its first checkpoint: a log line, no checkpoint
    capsys.readouterr()
    result, trainer = train(config, resume=True)
    assert capsys.readouterr().err.splitlines() == [f"nothing to resume in {tmp_path}: starting a fresh run"]
    assert trainer.steps_run == [0, 1, 2, 3] and result.steps == 4
    assert [line["step"] for line in log_of(tmp_path)] == [2, 3, 4]  # the earlier run's line is gone


def test_a_signal_during_an_evaluation_checkpoints_its_step_and_the_resume_evaluates_again(tmp_path):
    config = CountingConfig(str(tmp_path / "run"), log_every=1)  # evaluation at step 3, checkpoints at even steps
    with pytest.raises(Terminated, match="checkpoint of step 3 written to"):
        train(config, signal_eval_at=3)
    assert latest_checkpoint(tmp_path / "run").name == "step-0000003"
    assert [line["step"] for line in log_of(tmp_path / "run")] == [1, 2]  # step 3's line waits for its evaluation
    _, trainer = train(config, resume=True)
    assert trainer.steps_run == [3, 4, 5, 6]
    train(replace(config, out_dir=str(tmp_path / "whole")))
    assert without_times(log_of(tmp_path / "run")) == without_times(log_of(tmp_path / "whole"))
