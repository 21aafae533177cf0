"""`hybrid-arc plan` end to end on real bundled tasks with the offline default models."""

from __future__ import annotations

import json

from hybrid_pipeline.arc.scoring import read_submission
from hybrid_pipeline.arc.tasks import load_tasks
from hybrid_pipeline.cli import main

SMALL = "3c9b0459,6150a2bd"  # ARC-AGI-1 training tasks with 3x3 grids: quick for every proposer


def test_plan_with_every_proposer_writes_all_files_and_says_weights_are_random(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["plan", "--data", "arc-agi-1:training", "--tasks", SMALL, "--proposers", "hybrid,llm,trm,program",
                 "--attempts", "4", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr()
    assert printed.err.startswith("warning: random weights in hybrid proposer, llm proposer, trm proposer")
    assert "per-task score" in printed.out and "2 of 2 tasks, 2 test inputs" in printed.out
    tasks = load_tasks("arc-agi-1:training", ids=SMALL.split(",")).tasks
    read_submission(out / "submission.json", tasks)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in records] == SMALL.split(",")
    proposers = {a["proposer"] for r in records for t in r["test"] for a in t["attempts"]}
    assert proposers == {"hybrid", "llm", "trm", "program"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["random_weights"] and summary["finished"] == 2 and "task_score" in summary
    assert "3c9b0459" in (out / "report.html").read_text()


def test_bad_tasks_are_reported_the_rest_run_and_the_exit_code_is_2(tmp_path, capsys):
    data = tmp_path / "tasks"
    data.mkdir()
    good = load_tasks("arc-agi-1:training", ids=["3c9b0459"]).tasks[0]
    (data / "good.json").write_text(json.dumps({
        "train": [{"input": ex.input.tolist(), "output": ex.output.tolist()} for ex in good.train],
        "test": [{"input": ex.input.tolist(), "output": ex.output.tolist()} for ex in good.test]}))
    (data / "bad.json").write_text('{"train": [], "test": []}')
    out = tmp_path / "run"
    assert main(["plan", "--data", str(data), "--proposers", "trm", "--attempts", "1", "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err
    assert [json.loads(x)["task_id"] for x in (out / "results.jsonl").read_text().splitlines()] == ["good"]


def test_usage_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["plan", "--data", "arc-agi-1:training", "--tasks", "3c9b0459", "--proposers", "oracle",
                 "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "oracle" in err[0]

    assert main(["plan", "--data", "arc-agi-1:training", "--tasks", "3c9b0459", "--backbone", str(tmp_path / "none"),
                 "--proposers", "llm", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none" in err[0]

    args = ["plan", "--data", "arc-agi-1:training", "--tasks", "3c9b0459", "--proposers", "trm", "--attempts", "1",
            "--out", str(tmp_path / "c"), "--quiet"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2  # would overwrite results.jsonl
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0


def test_a_killed_run_resumes_to_the_same_submission(tmp_path):
    """SIGKILL (no chance to clean up) after the first task, then --resume: same files as one run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    tasks = "3c9b0459,6150a2bd,67a3c6ac,0d3d703e,25ff71a9"

    def command(out):
        return [sys.executable, "-m", "hybrid_pipeline.cli", "plan", "--data", "arc-agi-1:training", "--tasks", tasks,
                "--proposers", "trm", "--attempts", "2", "--out", str(out), "--quiet"]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    assert subprocess.run(command(whole), env=env, capture_output=True, timeout=300).returncode == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "results.jsonl").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len((killed / "results.jsonl").read_text().splitlines())
    assert 1 <= done < 5, "the kill should land mid-run"
    assert subprocess.run(command(killed) + ["--resume"], env=env, capture_output=True, timeout=300).returncode == 0
    assert (killed / "submission.json").read_text() == (whole / "submission.json").read_text()
    assert len((killed / "results.jsonl").read_text().splitlines()) == 5
