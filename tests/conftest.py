"""Shared fixtures: bundled ARC data (loaded once per session) and small hand-made tasks."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# Tests never touch the network: model and dataset hubs stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Training runs through accelerate, which would take a GPU when one is present; the suite's exact
# assertions (bit-identical resume, frozen weights, tensors compared with CPU copies) are CPU facts.
os.environ.setdefault("ACCELERATE_USE_CPU", "1")

# One intra-op thread for torch: the models in tests are tiny, so a second thread buys nothing, and
# when another process holds the other core torch's spinning threads slow tiny ops down 10x or more.
# The environment variable too: commands run in the tests (and their child processes) choose their
# thread count from it (hybrid_pipeline.threads) unless a test passes --threads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def load_experiment(name: str):
    """experiments/<name>.py as a module. `experiments` is not a package (nothing imports it), so
    tests that assert on a script's functions load it from its file path; a script another script
    already imported is that module (one module, one set of classes)."""
    path = EXPERIMENTS / f"{name}.py"
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "")).resolve() == path:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def arc1_eval():
    from hybrid_pipeline.arc.tasks import load_tasks

    return load_tasks("arc-agi-1:evaluation").raise_if_problems().tasks


@pytest.fixture(scope="session")
def arc1_train():
    from hybrid_pipeline.arc.tasks import load_tasks

    return load_tasks("arc-agi-1:training").raise_if_problems().tasks


def task_json(train_pairs=1, test_pairs=1, with_solutions=True):
    """A small valid task object: output = input + 1 (mod 10)."""
    def pair(seed, with_output=True):
        grid = (np.arange(6).reshape(2, 3) + seed) % 10
        out = {"input": grid.tolist()}
        if with_output:
            out["output"] = ((grid + 1) % 10).tolist()
        return out
    return {"train": [pair(i) for i in range(train_pairs)],
            "test": [pair(10 + i, with_solutions) for i in range(test_pairs)]}


@pytest.fixture
def write_json(tmp_path):
    def write(name, obj):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
        return path
    return write


# What differs between two runs of the same tasks on one machine: the time each part took.
TIMING_FIELDS = ("seconds", "check_seconds", "predict_seconds", "search_seconds")


def without_timing(value):
    """A run's record or summary (nested dicts and lists) without its `TIMING_FIELDS`."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def signal_training(command, log, signum, *, steps=1):
    """Run `hybrid-arc <command>` (a trainer, progress bars off) in a fresh interpreter, send it
    `signum` once its train_log.jsonl holds `steps` lines, and return (its exit code, its stderr)."""
    import subprocess
    import sys
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "hybrid_pipeline.cli", *command, "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 90
        while child.poll() is None and time.monotonic() < deadline:
            if log.exists() and len(log.read_text().splitlines()) >= steps:
                break
            time.sleep(0.005)
        child.send_signal(signum)
        _, err = child.communicate(timeout=90)
    finally:
        child.kill()
    return child.returncode, err

