"""The baseline and planner paths with the tiny random backbone raise no deprecation warnings:
transformers' deprecation warnings would break into the progress bars, and tell of calls that a
later version removes."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest

from hybrid_pipeline.cli import main

TASK = "3c9b0459"  # ARC-AGI-1 training, 3x3 grids: quick for every proposer
DEPRECATIONS = (DeprecationWarning, FutureWarning)


def commands(out):
    return [["baseline", "--data", "arc-agi-1:training", "--tasks", TASK, "--backbone", "tiny-random",
             "--out", str(out / "baseline")],
            ["plan", "--data", "arc-agi-1:training", "--tasks", TASK, "--proposers", "llm,hybrid,trm",
             "--attempts", "3", "--no-consistency-checks", "--out", str(out / "plan"), "--quiet"]]


def test_baseline_and_plan_with_model_proposers_warn_of_no_deprecation(tmp_path):
    for args in commands(tmp_path):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # every call, even one an earlier test made already
            assert main(args) == 0
        deprecations = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
                        if issubclass(w.category, DEPRECATIONS)]
        assert not deprecations, f"hybrid-arc {args[0]}: {deprecations}"


@pytest.mark.slow  # fresh interpreters: imports of torch and transformers count too
def test_the_commands_run_with_deprecation_warnings_as_errors(tmp_path):
    for args in commands(tmp_path):
        done = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-W", "error::FutureWarning",
                               "-m", "hybrid_pipeline.cli", *args], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    # The planner records a proposer's exception as a failed attempt: none may be a warning raised as an error.
    record = json.loads((tmp_path / "plan" / "results.jsonl").read_text())
    errors = [a["error"] for t in record["test"] for a in t["attempts"] if a.get("error")]
    assert not [e for e in errors if "Warning" in e], errors
