"""Toy task families (experiments/toy_tasks.py): each rule on hand-checked grids, the generated tasks'
invariants, and (slow) that the TRM learns the simple families on a CPU.

Nothing imports `experiments` (it is not a package); the module is loaded from its file path instead
of being run as a subprocess, because these tests assert on the arrays its pure functions return,
which a subprocess could only hand back through files. Loading it is cheap: torch and the trainer
are imported inside the training functions only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import load_experiment
from hybrid_pipeline.arc.tasks import load_tasks

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "toy_tasks.py"


toy = load_experiment("toy_tasks.py")


def g(rows):
    return np.array(rows, dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# rules on hand-checked grids

@pytest.mark.parametrize("family, grid, expected", [
    ("flip_lr", [[1, 2, 0], [0, 3, 4]], [[0, 2, 1], [4, 3, 0]]),
    ("flip_ud", [[1, 2, 0], [0, 3, 4]], [[0, 3, 4], [1, 2, 0]]),
    ("rotate90", [[1, 2, 0], [0, 3, 4]], [[0, 4], [2, 3], [1, 0]]),  # counter-clockwise
    ("transpose", [[1, 2, 0], [0, 3, 4]], [[1, 0], [2, 3], [0, 4]]),
    ("gravity", [[5, 0, 7], [0, 6, 0], [8, 0, 0]], [[0, 0, 0], [5, 0, 0], [8, 6, 7]]),
])
def test_transform_rules(family, grid, expected):
    np.testing.assert_array_equal(toy.TRANSFORMS[family](g(grid)), g(expected))


def test_map_colours_keeps_background():
    mapping = g([0, 2, 3, 4, 5, 6, 7, 8, 9, 1])  # c -> c + 1, 9 -> 1
    np.testing.assert_array_equal(toy.map_colours(g([[0, 1], [9, 4]]), mapping), g([[0, 2], [1, 5]]))


def test_mirror_left_half():
    grid = g([[1, 2, 0, 0],
              [0, 3, 0, 0]])
    np.testing.assert_array_equal(toy.mirror_left_half(grid), g([[1, 2, 2, 1],
                                                                [0, 3, 3, 0]]))


def test_fill_enclosed_fills_only_what_the_border_cannot_reach():
    grid = g([[2, 2, 2, 2, 0, 0],
              [2, 0, 0, 2, 0, 3],
              [2, 2, 2, 2, 0, 3],
              [0, 0, 0, 0, 0, 3],
              [0, 3, 3, 3, 3, 3]])  # the 3-shape is open to the top: nothing inside it is enclosed
    expected = grid.copy()
    expected[1, 1:3] = 7
    np.testing.assert_array_equal(toy.fill_enclosed(grid, 7), expected)


def test_reach_floods_the_seed_colour_through_the_background_it_joins():
    grid = g([[0, 5, 0, 0],
              [0, 5, 4, 0],
              [0, 5, 5, 0],
              [0, 0, 5, 0]])  # the seed (4) reaches the right-hand column, not the left: 5s wall it off
    expected = g([[0, 5, 4, 4],
                  [0, 5, 4, 4],
                  [0, 5, 5, 4],
                  [0, 0, 5, 4]])
    np.testing.assert_array_equal(toy.reach(grid, 4), expected)
    # a diagonal gap is no path
    np.testing.assert_array_equal(toy.reach(g([[4, 5], [5, 0]]), 4), g([[4, 5], [5, 0]]))


# --------------------------------------------------------------------------------------------------
# generated tasks

@pytest.mark.parametrize("family", toy.FAMILIES)
def test_generated_pairs_follow_the_family_rule(family):
    task = toy.make_task(family, n_train=40, n_test=10, seed=3)
    pairs = task.train + task.test
    if family in toy.TRANSFORMS:
        for ex in pairs:
            np.testing.assert_array_equal(ex.output, toy.TRANSFORMS[family](ex.input))
    elif family == "colour_map":
        mapping = {}  # one permutation for the whole task, background fixed
        for ex in pairs:
            assert ex.output.shape == ex.input.shape
            for a, b in zip(ex.input.ravel().tolist(), ex.output.ravel().tolist()):
                assert mapping.setdefault(a, b) == b
        assert mapping.get(0, 0) == 0
        assert len(set(mapping.values())) == len(mapping)
    elif family == "object_copy":
        for ex in pairs:
            w = ex.input.shape[1]
            assert w % 2 == 0 and not ex.input[:, w // 2:].any()
            np.testing.assert_array_equal(ex.output, toy.mirror_left_half(ex.input))
    elif family == "fill_enclosed":
        fills = {int(c) for ex in pairs for c in ex.output[(ex.input == 0) & (ex.output != 0)]}
        assert len(fills) == 1  # one fill colour for the whole task
        colour = fills.pop()
        for ex in pairs:
            assert colour not in ex.input
            np.testing.assert_array_equal(ex.output, toy.fill_enclosed(ex.input, colour))
    elif family == "reach":
        seeds = {int(c) for ex in pairs for c in ex.output[(ex.input == 0) & (ex.output != 0)]}
        assert len(seeds) == 1  # one seed colour for the whole task
        colour = seeds.pop()
        walls = {int(c) for ex in pairs for c in np.unique(ex.input)} - {0, colour}
        assert len(walls) == 1  # and one wall colour
        for ex in pairs:
            assert (ex.input == colour).sum() == 1
            np.testing.assert_array_equal(ex.output, toy.reach(ex.input, colour))
    else:
        raise AssertionError(f"no rule check for family {family}")


@pytest.mark.parametrize("family", toy.FAMILIES)
def test_grids_fit_the_canvas_and_tests_are_unseen(family):
    task = toy.make_task(family, n_train=200, n_test=30, seed=0)
    assert (len(task.train), len(task.test)) == (200, 30)
    for ex in task.train + task.test:
        for grid in (ex.input, ex.output):
            assert grid.dtype == np.uint8 and grid.ndim == 2
            assert 1 <= min(grid.shape) and max(grid.shape) <= 10
            assert grid.max() <= 9
        assert ex.input.any()
    seen = {(ex.input.shape, ex.input.tobytes()) for ex in task.train}
    assert not any((ex.input.shape, ex.input.tobytes()) in seen for ex in task.test)


def test_object_copy_input_holds_one_connected_object():
    for ex in toy.make_task("object_copy", n_train=50, n_test=1, seed=1).train:
        cells = set(zip(*np.nonzero(ex.input)))
        stack, reached = [next(iter(cells))], set()
        while stack:
            r, c = stack.pop()
            if (r, c) in cells and (r, c) not in reached:
                reached.add((r, c))
                stack += [(r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)]
        assert reached == cells


def _same_task(a, b):
    return a.id == b.id and a.to_json() == b.to_json()


def test_tasks_are_deterministic_per_seed_and_family():
    assert _same_task(toy.make_task("colour_map", 20, 5, seed=7), toy.make_task("colour_map", 20, 5, seed=7))
    assert not _same_task(toy.make_task("colour_map", 20, 5, seed=7), toy.make_task("colour_map", 20, 5, seed=8))


def test_a_family_does_not_depend_on_the_others(tmp_path):
    alone = toy.write_toy_tasks(tmp_path / "a", ["gravity"], n_train=10, n_test=2, seed=0)
    together = toy.write_toy_tasks(tmp_path / "b", ["flip_lr", "gravity"], n_train=10, n_test=2, seed=0)
    assert alone[0].read_text() == together[1].read_text()


def test_written_tasks_load_back(tmp_path):
    paths = toy.write_toy_tasks(tmp_path, toy.FAMILIES, n_train=12, n_test=3, seed=0)
    assert [p.name for p in paths] == [f"{f}.json" for f in toy.FAMILIES]
    result = load_tasks(tmp_path, require_solutions=True)
    assert result.problems == []
    loaded = {t.id: t for t in result.tasks}
    assert sorted(loaded) == sorted(toy.FAMILIES)
    for family in toy.FAMILIES:
        assert _same_task(loaded[family], toy.make_task(family, 12, 3, seed=0))


def test_unknown_family_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        toy.main(["--families", "flip_lr,spin", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "spin" in capsys.readouterr().err


def test_a_short_run_reports_every_family_and_the_check_decides_the_exit_code(tmp_path, capsys):
    args = ["--families", "colour_map,flip_lr", "--n-train", "16", "--n-test", "3", "--quiet", "max_steps=2"]
    assert toy.main([*args, "--out", str(tmp_path / "a")]) == 0
    table = capsys.readouterr().out
    for row in ("colour_map", "flip_lr", "mean (simple)", "2 training steps"):
        assert row in table
    # two steps learn nothing, so a check at 0.99 must fail the run
    assert toy.main([*args, "--out", str(tmp_path / "b"), "--check", "0.99"]) == 1
    assert "check FAILED" in capsys.readouterr().out


def test_rescore_measures_the_trained_model_again_and_refuses_other_tasks(tmp_path, capsys):
    args = ["--families", "flip_ud,reach", "--n-train", "16", "--quiet", "--out", str(tmp_path)]
    assert toy.main([*args, "--n-test", "3", "max_steps=2"]) == 0
    trained = capsys.readouterr().out.splitlines()
    exported = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "trm" / "final").iterdir()}
    # the same tasks: the same table, without training (no seconds on the last line)
    assert toy.main([*args, "--n-test", "3", "--rescore"]) == 0
    rescored = capsys.readouterr().out.splitlines()
    table = trained[trained.index(rescored[0]):]
    assert rescored[:-1] == table[:-1] and len(rescored) == len(table) == 6  # header, 2 families, 2 means, steps
    assert rescored[-1] == "2 training steps" and table[-1].startswith("2 training steps, ")
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "trm" / "final").iterdir()} == exported
    # more unseen test pairs of the same tasks
    assert toy.main([*args, "--n-test", "40", "--rescore"]) == 0
    assert "reach" in capsys.readouterr().out
    # another seed draws other demonstrations: its "test" pairs could be ones the model trained on
    with pytest.raises(SystemExit) as exit_info:
        toy.main([*args, "--seed", "1", "--rescore"])
    assert exit_info.value.code == 2
    assert "flip_ud.json" in capsys.readouterr().err
    # the run's task files are where the check reads its demonstrations from
    (tmp_path / "tasks" / "reach.json").write_text("{truncated")
    with pytest.raises(SystemExit) as exit_info:
        toy.main([*args, "--rescore"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "reach.json" in err[-1] and "Traceback" not in "".join(err)


@pytest.mark.parametrize("extra, named", [([], "summary.json"), (["max_steps=5"], "max_steps=5")])
def test_rescore_without_a_finished_run_or_with_overrides_is_a_usage_error(tmp_path, capsys, extra, named):
    with pytest.raises(SystemExit) as exit_info:
        toy.main(["--rescore", "--out", str(tmp_path), *extra])
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# learning

@pytest.mark.slow
def test_trm_learns_the_simple_families_on_cpu(tmp_path):
    """The toy recipe learns flips, rotation, transpose and a recolouring from scratch on a CPU, to
    a mean pass@1 of 0.9 on unseen instances.

    The test runs the recipe's whole 9,000-step budget (a 30-minute backstop instead of the check's
    10), so that its outcome does not depend on how fast the machine is that day: on the 2-core cloud machine
    this is developed on, 10 minutes held 7,499-9,764 steps on different runs (see docs/trm.md).
    At 9,000 steps, seeds 0-6 scored 0.948-0.996; one run in ten (seed 0 under torch.compile,
    0.836) fell short, so a rare failure here is the recipe's thin margin, not necessarily a bug.
    A TRM that cannot learn geometric rules at all scores 0.2 (colour_map alone).
    """
    run = subprocess.run([sys.executable, str(SCRIPT), "--check", "0.9", "--minutes", "30", "--quiet",
                          "--out", str(tmp_path)],
                         check=False, capture_output=True, text=True, timeout=40 * 60)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
