"""Real signals to `hybrid-arc plan`, `baseline` and `trm eval` in a subprocess: SIGTERM and Ctrl-C's
SIGINT let the task's writes finish, write the summary marked interrupted (and plan's report), and
exit 143 / 130; SIGKILL gives no chance to clean up. After each, `--resume` reaches the files of one
uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import without_timing

TASKS = 30
PLAN = [sys.executable, "-m", "hybrid_pipeline.cli", "plan", "--data", "arc-agi-1:training", "--limit", str(TASKS),
        "--proposers", "search", "--search-budget", "10", "--search-view-budget", "0", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def lines(out):
    path = out / "results.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def final_files(out, rates=()):
    """results.jsonl in file order, submission.json and summary.json, timing fields (and the summary's
    `rates`, computed from them) aside."""
    summary = without_timing(json.loads((out / "summary.json").read_text()))
    return ([without_timing(json.loads(line)) for line in (out / "results.jsonl").read_text().splitlines()],
            json.loads((out / "submission.json").read_text()),
            {k: v for k, v in summary.items() if k not in rates})


def run_to_end(command, out, *extra):
    done = subprocess.run([*command, "--out", str(out), *extra], env=ENV, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    run_to_end(PLAN, out)
    return final_files(out)


def start_and_wait(command, out, results):
    """Start the run; return it once results.jsonl holds `results` lines (it must still be running)."""
    run = subprocess.Popen([*command, "--out", str(out)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while lines(out) < results:
        assert time.monotonic() < deadline and run.poll() is None, "the run ended before the signal"
        time.sleep(0.02)
    return run


def stopped_by(signum, code, command, out, tasks):
    """Send `signum` once the run has finished a task; check that it exits `code` saying so and leaves
    every file valid (whole results lines, a submission of every task, the summary marked
    interrupted); the summary and the records."""
    run = start_and_wait(command, out, 1)
    run.send_signal(signum)
    _, err = run.communicate(timeout=60)
    assert run.returncode == code, err.decode()[-2000:]
    assert err.decode().splitlines()[-1] == (f"interrupted: every file in {out} is valid; rerun with --resume to "
                                             "continue")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["tasks"] == tasks
    text = (out / "results.jsonl").read_text()
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]  # every line whole
    assert 1 <= len(records) < tasks, "the signal should land mid-run"
    assert len(json.loads((out / "submission.json").read_text())) == tasks  # placeholders for the rest
    return summary, records


def resume(command, out):
    run_to_end(command, out, "--resume")


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_keeps_every_file_valid_exits_128_plus_it_and_a_resume_reaches_the_uninterrupted_files(
        whole, tmp_path, signum, code):
    out = tmp_path / "cut"
    summary, records = stopped_by(signum, code, PLAN, out, TASKS)
    assert summary["finished"] == len(records)
    assert f"{summary['finished']}" in (out / "report.html").read_text()

    resume(PLAN, out)
    assert final_files(out) == whole


def test_sigkill_at_a_random_point_then_resume_reaches_the_uninterrupted_files(whole, tmp_path):
    rng = random.Random(20240611)
    after = rng.randint(1, TASKS // 2)  # finished tasks, then a moment into the next one (or its writes)
    out = tmp_path / "killed"
    run = start_and_wait(PLAN, out, after)
    time.sleep(rng.uniform(0, 0.3))
    run.kill()
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL
    assert after <= lines(out) < TASKS, "the kill should land mid-run"
    assert not (out / "summary.json").exists()  # no chance to write it

    resume(PLAN, out)
    assert final_files(out) == whole


BASELINE_TASKS = 20
BASELINE = [sys.executable, "-m", "hybrid_pipeline.cli", "baseline", "--data", "arc-agi-1:training", "--limit",
            str(BASELINE_TASKS), "--backbone", "tiny-random", "--max-new-tokens", "16"]
BASELINE_RATES = ("tokens_per_second", "seconds_per_task")  # from the seconds: timing too


def test_sigterm_to_baseline_keeps_every_file_valid_and_a_resume_reaches_the_uninterrupted_files(tmp_path):
    run_to_end(BASELINE, tmp_path / "whole")
    out = tmp_path / "cut"
    summary, records = stopped_by(signal.SIGTERM, 143, BASELINE, out, BASELINE_TASKS)
    assert summary["finished_tasks"] == len(records)

    resume(BASELINE, out)
    assert final_files(out, BASELINE_RATES) == final_files(tmp_path / "whole", BASELINE_RATES)
    assert json.loads((out / "summary.json").read_text())["interrupted"] is False


EVAL_TASKS = 20


@pytest.fixture(scope="module")
def trm_eval(tmp_path_factory):
    """`hybrid-arc trm eval` of a 1-step TRM over 20 evaluation tasks, a batch per task. The canvas is
    30 so that every task fits and takes a moment to predict (on an 8x8 one most tasks are skipped at
    once, and the signal would come after the run)."""
    from test_trm_train import tiny_config

    from hybrid_pipeline.trm.train import train_trm

    root = tmp_path_factory.mktemp("trm")
    model = {"hidden_size": 32, "num_heads": 2, "L_layers": 1, "H_cycles": 2, "L_cycles": 2, "puzzle_emb_len": 2,
             "halt_max_steps": 4, "forward_dtype": "float32"}
    config = tiny_config(root / "train", root / "cache", model=model, canvas=30, max_steps=1, eval_tasks=[])
    final = train_trm(config, progress=False).final_dir
    return [sys.executable, "-m", "hybrid_pipeline.cli", "trm", "eval", "--checkpoint", str(final), "--data",
            "arc-agi-1:evaluation", "--limit", str(EVAL_TASKS), "--batch-size", "1"]


def test_sigterm_to_trm_eval_keeps_every_file_valid_and_a_resume_reaches_the_uninterrupted_files(trm_eval, tmp_path):
    run_to_end(trm_eval, tmp_path / "whole")
    out = tmp_path / "cut"
    summary, records = stopped_by(signal.SIGTERM, 143, trm_eval, out, EVAL_TASKS)
    assert summary["tasks_done"] == len(records) and "task_score" not in summary

    resume(trm_eval, out)
    assert final_files(out) == final_files(tmp_path / "whole")
    assert json.loads((out / "summary.json").read_text())["interrupted"] is False

