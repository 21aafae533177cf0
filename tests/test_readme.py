"""The README's tour runs as written: every command of its `sh` block, in a fresh directory that holds
only what a clone has (examples/, experiments/), with the exit code the README promises. The commands
marked at most 2 s that read no earlier run run in the fast suite; the whole tour, in order, is slow."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ESTIMATE = re.compile(r"\((\d+) (s|min)\)\s*$")


def tour_commands() -> list[tuple[str, int, float]]:
    """(command, expected exit code, estimated seconds) for each line of the tour's sh block."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## A short tour.*?```sh\n(.*?)```", text, re.S).group(1)
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        if not line.strip() or line.startswith(". "):
            continue
        command, _, comment = line.partition("#")
        estimate = ESTIMATE.search(comment)
        assert estimate, f"README tour line without a time: {line}"
        seconds = float(estimate.group(1)) * (60 if estimate.group(2) == "min" else 1)
        commands.append((" ".join(command.split()), 2 if "exit 2" in comment else 0, seconds))
    return commands


def reads_no_run(command: str) -> bool:
    words = shlex.split(command)
    return all(not word.startswith("runs/") or words[i - 1] == "--out" for i, word in enumerate(words))


def run_tour(commands, tmp_path: Path) -> None:
    for name in ("examples", "experiments"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               OMP_NUM_THREADS="1", NO_COLOR="1")
    for command, expected, _ in commands:
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=1800)
        assert done.returncode == expected, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        if expected == 2:  # the problem is named on a line of its own that starts with the file
            files = [word for word in shlex.split(command) if word.endswith(".json")]
            assert any(line.startswith(f"error: {files[0]}: task ") for line in done.stderr.splitlines()), done.stderr


def test_the_tour_has_commands_and_each_says_its_time():
    commands = tour_commands()
    assert len(commands) >= 10
    assert any(expected == 2 for _, expected, _ in commands)


def test_the_quick_tour_commands_run_as_written(tmp_path):
    quick = [c for c in tour_commands() if c[2] <= 2 and reads_no_run(c[0])]
    assert len(quick) >= 5
    run_tour(quick, tmp_path)


@pytest.mark.slow
def test_the_whole_tour_runs_as_written_in_order(tmp_path):
    run_tour(tour_commands(), tmp_path)
