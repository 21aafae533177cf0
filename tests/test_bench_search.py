"""experiments/bench_search.py: its scores from a real plan run, and its reading of a peer's answer
files (through a stand-in executable that speaks the peer's file protocol, since the peer itself is
a C++ build that is never part of this repository)."""

from __future__ import annotations

import argparse
import json
import stat
import sys
from pathlib import Path

import numpy as np

from conftest import load_experiment

from hybrid_pipeline.arc.tasks import Example, Task, load_tasks

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "bench_search.py"


def _bench():
    return load_experiment("bench_search")


def _args(**overrides):
    values = dict(budget=40, view_budget=20, depth=3, order="breadth", seconds=None, attempts=4, workers=1, limit=None,
                  quiet=True, out=None, peer_depth=2)
    values.update(overrides)
    return argparse.Namespace(**values)


def test_bench_scores_a_plan_run_of_solved_and_unsolved_tasks():
    bench = _bench()
    tasks = load_tasks("arc-agi-1:training", ids=["0d3d703e", "68b16354", "045e512c"]).tasks
    row = bench.run_split("arc-agi-1:training", tasks, _args(), feedback=True)
    assert row["tasks"] == 3 and row["test_outputs"] == 3
    assert row["pass@1_task"] == row["pass@2_task"] == 2 / 3
    assert row["fit_tasks"] >= 2 and row["solved@2_outputs"] == 2
    assert row["capped_tasks"] == 0 and row["cpu_seconds"] > 0


STAND_IN = """\
#!{python}
# Speaks the peer's protocol: ./dataset/evaluation/<id>.json in, output/answer_<sample>_<depth>.csv out.
import json, os, sys
sample, depth = int(sys.argv[1]), sys.argv[2]
samples = []
for name in sorted(os.listdir("dataset/evaluation")):
    task = json.load(open(os.path.join("dataset/evaluation", name)))
    samples += [(name[:-5], k, t["input"]) for k, t in enumerate(task["test"])]
task_id, k, grid = samples[sample]
rows = "|" + "|".join("".join(map(str, r)) for r in grid) + "|"
flipped = "|" + "|".join("".join(map(str, r[::-1])) for r in grid) + "|"
with open(f"output/answer_{{sample}}_{{depth}}.csv", "w") as f:
    f.write(f"{{task_id}}_{{k}}\\n{{rows}} 0.5\\n{{flipped}} 0.9\\n")
"""


def test_peer_answers_are_read_ranked_by_the_peers_score_and_scored_like_ours(tmp_path):
    bench = _bench()
    peer = tmp_path / "peer"
    peer.mkdir()
    run = peer / "run"
    run.write_text(STAND_IN.format(python=sys.executable))
    run.chmod(run.stat().st_mode | stat.S_IEXEC)
    grid = np.array([[1, 2]], dtype=np.uint8)
    # The stand-in answers a flip first (score 0.9), the input itself second.
    tasks = [Task("aaaaaaaa", (Example(grid, grid[:, ::-1]),), (Example(grid, grid[:, ::-1]),)),
             Task("bbbbbbbb", (Example(grid, grid),), (Example(grid, grid), Example(grid, np.zeros((1, 2), np.uint8))))]
    row = bench.run_peer(str(peer), "hand", tasks, _args())
    assert row["pass@1_task"] == 0.5  # aaaaaaaa by its first answer; bbbbbbbb's first answer is wrong
    assert row["pass@2_task"] == (1 + 0.5) / 2 and row["solved@2_outputs"] == 2
    assert row["test_outputs"] == 3 and row["error_tasks"] == 0
    assert json.dumps({k: v for k, v in row.items() if k != "attempts"})
