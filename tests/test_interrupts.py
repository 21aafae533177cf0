"""Real signals to `hybrid-arc plan` in a subprocess: SIGTERM and Ctrl-C's SIGINT let the task's
writes finish, write the summary marked interrupted and the report, and exit 143 / 130; SIGKILL
gives no chance to clean up. After each, `--resume` reaches the files of one uninterrupted run."""

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
COMMAND = [sys.executable, "-m", "hybrid_pipeline.cli", "plan", "--data", "arc-agi-1:training", "--limit", str(TASKS),
           "--proposers", "search", "--search-budget", "10", "--search-view-budget", "0", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def lines(out):
    path = out / "results.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def final_files(out):
    """results.jsonl in file order, submission.json and summary.json, timing fields aside."""
    return ([without_timing(json.loads(line)) for line in (out / "results.jsonl").read_text().splitlines()],
            json.loads((out / "submission.json").read_text()),
            without_timing(json.loads((out / "summary.json").read_text())))


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    done = subprocess.run([*COMMAND, "--out", str(out)], env=ENV, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return final_files(out)


def start_and_wait(out, results):
    """Start the run; return it once results.jsonl holds `results` lines (it must still be running)."""
    run = subprocess.Popen([*COMMAND, "--out", str(out)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while lines(out) < results:
        assert time.monotonic() < deadline and run.poll() is None, "the run ended before the signal"
        time.sleep(0.02)
    return run


def resume(out):
    done = subprocess.run([*COMMAND, "--out", str(out), "--resume"], env=ENV, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_keeps_every_file_valid_exits_128_plus_it_and_a_resume_reaches_the_uninterrupted_files(
        whole, tmp_path, signum, code):
    out = tmp_path / "cut"
    run = start_and_wait(out, 1)
    run.send_signal(signum)
    _, err = run.communicate(timeout=60)
    assert run.returncode == code, err.decode()[-2000:]
    assert err.decode().splitlines()[-1] == (f"interrupted: every file in {out} is valid; rerun with --resume to "
                                             "continue")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["tasks"] == TASKS
    text = (out / "results.jsonl").read_text()
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]  # every line whole
    assert 1 <= len(records) < TASKS and summary["finished"] == len(records)
    assert len(json.loads((out / "submission.json").read_text())) == TASKS  # placeholders for the rest
    assert f"{summary['finished']}" in (out / "report.html").read_text()

    resume(out)
    assert final_files(out) == whole


def test_sigkill_at_a_random_point_then_resume_reaches_the_uninterrupted_files(whole, tmp_path):
    rng = random.Random(20240611)
    after = rng.randint(1, TASKS // 2)  # finished tasks, then a moment into the next one (or its writes)
    out = tmp_path / "killed"
    run = start_and_wait(out, after)
    time.sleep(rng.uniform(0, 0.3))
    run.kill()
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL
    assert after <= lines(out) < TASKS, "the kill should land mid-run"
    assert not (out / "summary.json").exists()  # no chance to write it

    resume(out)
    assert final_files(out) == whole
