"""Thread counts: a process's share of the cores, overridden by the environment, overridden by
`--threads`; said in the run's header and recorded in run.json beside (not among) the settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from hybrid_pipeline import threads
from hybrid_pipeline.cli import main
from hybrid_pipeline.threads import choose_threads, local_processes, share_cores, use_threads

NO_ENV: dict[str, str] = {}


@pytest.fixture(autouse=True)
def one_thread_after():
    """Commands run here change this process's thread count; the rest of the suite runs on one."""
    yield
    threads._chosen = None
    torch.set_num_threads(1)


@pytest.fixture
def eight_cores(monkeypatch):
    """An 8-core machine."""
    monkeypatch.setattr(threads, "cores", lambda: 8)


def test_the_cores_are_shared_among_the_processes_at_least_one_each(eight_cores):
    assert choose_threads(None, 1, NO_ENV).threads == 8
    assert choose_threads(None, 3, NO_ENV).threads == 2  # 8 // 3: never more threads than cores
    assert choose_threads(None, 16, NO_ENV).threads == 1
    assert choose_threads(None, 0, NO_ENV).threads == 8  # "no processes" is one


def test_the_environment_wins_over_the_share_and_the_flag_over_both(eight_cores):
    env = {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "5"}
    assert choose_threads(None, 2, env).to_dict() == {"torch_threads": 3, "chosen_by": "OMP_NUM_THREADS",
                                                      "cores": 8, "processes": 2}
    assert choose_threads(None, 2, {"MKL_NUM_THREADS": "5"}).chosen_by == "MKL_NUM_THREADS"
    assert choose_threads(None, 2, {"OMP_NUM_THREADS": "0", "MKL_NUM_THREADS": "x"}).threads == 4  # unusable: ignored
    assert choose_threads(6, 2, env).to_dict() == {"torch_threads": 6, "chosen_by": "--threads", "cores": 8,
                                                   "processes": 2}
    with pytest.raises(ValueError, match="--threads must be at least 1, got 0"):
        choose_threads(0, 1, env)


def test_the_header_line_says_the_count_and_why(eight_cores):
    assert choose_threads(None, 1, NO_ENV).describe() == (
        "threads: 8 per process (8 cores / 1 process; --threads N or OMP_NUM_THREADS to change)")
    assert choose_threads(None, 3, NO_ENV).describe().startswith("threads: 2 per process (8 cores / 3 "
                                                                 "processes;")
    assert choose_threads(2, 3, NO_ENV).describe().startswith("threads: 2 per process (set by --threads;")


def test_processes_of_a_launcher_come_from_local_world_size():
    assert local_processes({"LOCAL_WORLD_SIZE": "4", "WORLD_SIZE": "8"}) == 4
    assert local_processes({}) == 1 and local_processes({"LOCAL_WORLD_SIZE": "0"}) == 1


def test_a_worker_keeps_the_count_chosen_before_the_fork_else_takes_its_share(eight_cores, monkeypatch):
    for name in threads.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert share_cores(4) == 2 and torch.get_num_threads() == 2  # nothing chosen: its share
    use_threads(3, processes=4)
    assert share_cores(4) == 3 and torch.get_num_threads() == 3


@pytest.mark.slow  # two fresh imports of torch
def test_a_count_chosen_before_torch_is_imported_is_the_count_torch_starts_with():
    code = ("from hybrid_pipeline.threads import use_threads; import sys; use_threads({}); "
            "assert 'torch' not in sys.modules; import torch; print(torch.get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k not in threads.ENV_VARS}
    for count in (1, 2):
        done = subprocess.run([sys.executable, "-c", code.format(count)], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0 and done.stdout.strip() == str(count), done.stderr[-2000:]


def plan_args(out, *extra):
    return ["plan", "--data", "arc-agi-1:training", "--tasks", "3c9b0459", "--proposers", "search",
            "--search-budget", "20", "--attempts", "1", "--out", str(out), "--quiet", *extra]


def test_plan_says_and_records_the_threads_and_a_resume_may_change_them(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(plan_args(out)) == 0  # OMP_NUM_THREADS=1, as conftest sets it
    assert "threads: 1 per process (set by OMP_NUM_THREADS;" in capsys.readouterr().out
    assert json.loads((out / "run.json").read_text())["threads"]["chosen_by"] == "OMP_NUM_THREADS"

    assert main(plan_args(out, "--threads", "2", "--resume")) == 0  # the flag wins over the environment
    assert "threads: 2 per process (set by --threads;" in capsys.readouterr().out
    run = json.loads((out / "run.json").read_text())
    assert run["threads"] == {"torch_threads": 2, "chosen_by": "--threads", "cores": threads.cores(), "processes": 1}
    assert "threads" not in json.dumps(run["settings"])  # speed, not results: never a reason to refuse a resume
    assert torch.get_num_threads() == 2


def test_a_bad_thread_count_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(plan_args(tmp_path / "run", "--threads", "0"))
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: hybrid-arc plan: argument --threads: expected a positive integer, got 0")
