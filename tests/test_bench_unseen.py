"""experiments/bench_unseen.py end to end at a tiny size: every method answers every held-out task,
the table has a row per family and method, results.json holds what the table shows, a plugged-in
method is run and scored by the benchmark from its predictions, and the paper's route trains rows
for the held-out tasks from their demonstrations without ever reading a test output.

`experiments` is not a package: the module is loaded from its file path (conftest.load_experiment).
"""

from __future__ import annotations

import json

import numpy as np

from conftest import load_experiment

bench = load_experiment("bench_unseen")


def copy_demonstration_output(train, heldout, budget):
    """A method for the test: answers each held-out task with its first demonstration's output grid."""
    from unseen_tasks import MethodResult

    assert all(not t.has_solutions for t in heldout)  # the benchmark hands over no test output
    return MethodResult("copy", {}, 0.0, 0.0, predictions={t.id: t.train[0].output for t in heldout})


def test_a_tiny_benchmark_runs_every_method_and_writes_the_table_it_prints(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["--quick", "--families", "dihedral", "--train-tasks", "6", "--heldout-tasks", "3", "--train-steps", "2",
            "--ttt-steps", "2", "--ttt-views", "2", "--jobs", "1", "--out", str(out),
            "--method", f"copy={__name__}:copy_demonstration_output", "--methods",
            "blank,mean,nearest,ttt,ttt_nearest,ttt_net,paper,copy",
            "model.hidden_size=16", "model.num_heads=2"]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| dihedral")]
    assert [r.split("|")[3].strip() for r in rows] == ["blank", "mean", "nearest", "ttt", "ttt_nearest", "ttt_net",
                                                        "paper", "copy"]
    results = json.loads((out / "results.json").read_text())
    record = results["families"][0]
    assert record["heldout_tasks"] == 3 and record["train_tasks"] == 6
    for name, method in record["methods"].items():
        assert len(method["correct"]) == 3, name
        assert f"{method['accuracy']:.3f} ± {method['standard_error']:.3f}" in printed
    assert record["methods"]["blank"]["test_cpu_s_per_task"] >= 0
    assert record["methods"]["ttt"]["notes"].startswith("2 steps")
    assert record["methods"]["nearest"]["notes"] == "2 views at the best fit of 128 trained rows"

    # the copying method is scored against the real test outputs: right exactly where the first
    # demonstration's output happens to be the test output (never, for distinct inputs under one rule)
    assert record["methods"]["copy"]["correct"] == {tid: False for tid in record["methods"]["copy"]["correct"]}

    # the paper's route trained a row per held-out task from a challenges file without test outputs
    from hybrid_pipeline.arc.datasets import BLANK_PUZZLE
    from hybrid_pipeline.arc.tasks import load_tasks

    heldout_file = out / "dihedral" / "paper" / "heldout_challenges.json"
    assert not any(t.has_solutions for t in load_tasks(str(heldout_file)).raise_if_problems().tasks)
    names = json.loads((out / "dihedral" / "paper" / "trm" / "final" / "puzzles.json").read_text())
    assert {n.rpartition("/")[0] for n in names if n != BLANK_PUZZLE} == set(record["methods"]["blank"]["correct"]) | {
        f"dihedral-train-s0-{i:05d}" for i in range(6)}


def test_score_marks_exact_answers_only():
    from unseen_tasks import MethodResult
    from hybrid_pipeline.arc.tasks import Example, Task

    expected = np.array([[1, 2]], dtype=np.uint8)
    tasks = [Task(f"t{i}", (), (Example(expected, expected),)) for i in range(3)]
    result = MethodResult("m", {}, 0.0, 0.0, predictions={"t0": expected.copy(), "t1": expected.T.copy(), "t2": None})
    assert bench.score(result, tasks).correct == {"t0": True, "t1": False, "t2": False}
