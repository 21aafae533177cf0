"""experiments/unseen_tasks.py: each family's rule on hand-checked grids, the tasks' invariants (ids,
determinism, demonstrations that fix the answer), chance levels, and the files `load_tasks` reads.

`experiments` is not a package: the module is loaded from its file path, as the toy tasks' tests do.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from hybrid_pipeline.arc.tasks import Example, Task, load_tasks

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "unseen_tasks.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("unseen_tasks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


u = _load_module()


def g(rows):
    return np.array(rows, dtype=np.uint8)


def test_translate_wraps_cells_past_an_edge_to_the_opposite_edge():
    grid = g([[1, 0, 0],
              [0, 2, 0]])
    assert (u.translate(grid, (1, -1)) == g([[2, 0, 0],
                                             [0, 0, 1]])).all()
    assert (u.translate(grid, (0, 2)) == g([[0, 0, 1],
                                            [2, 0, 0]])).all()


def test_recolour_by_size_colours_each_4_connected_object_by_its_cell_count():
    grid = g([[5, 5, 0, 5],
              [0, 5, 0, 0],
              [5, 0, 0, 5],
              [0, 0, 0, 5]])
    # sizes: the top-left L is 3 cells, (0,3) is 1, (2,0) is 1 (diagonal contact does not join), (2,3)+(3,3) is 2
    assert [int(m.sum()) for m in u.objects(grid)] == [3, 1, 1, 2]
    out = u.recolour_by_size(grid, {1: 7, 2: 3, 3: 9})
    assert (out == g([[9, 9, 0, 7],
                      [0, 9, 0, 0],
                      [7, 0, 0, 3],
                      [0, 0, 0, 3]])).all()
    assert (u.recolour_by_size(grid, {2: 3}) == g([[5, 5, 0, 5],  # sizes the table lacks stay
                                                  [0, 5, 0, 0],
                                                  [5, 0, 0, 3],
                                                  [0, 0, 0, 3]])).all()


def test_dihedral_and_colour_perm_rules_are_the_shared_helpers():
    grid = g([[1, 2, 0],
              [0, 0, 3]])
    assert (u.FAMILIES["dihedral"].apply(grid, 4) == g([[0, 2, 1], [3, 0, 0]])).all()  # 4: left-right flip
    table = np.array([0, 2, 3, 1, 4, 5, 6, 7, 8, 9], dtype=np.uint8)
    assert (u.FAMILIES["colour_perm"].apply(grid, table) == g([[2, 3, 0], [0, 0, 1]])).all()


@pytest.mark.parametrize("family", list(u.FAMILIES))
def test_tasks_are_deterministic_unique_fit_the_canvas_and_their_demonstrations_fix_the_answer(family):
    tasks = u.family_tasks(family, "train", 30, seed=3)
    again = u.family_tasks(family, "train", 30, seed=3)
    assert [t.to_json() for t in tasks] == [t.to_json() for t in again]
    assert len({t.id for t in tasks}) == 30
    held_out = u.family_tasks(family, "heldout", 30, seed=3)
    assert not {t.id for t in tasks} & {t.id for t in held_out}
    assert u.family_tasks(family, "train", 2, seed=4)[0].to_json() != tasks[0].to_json()
    spec = u.FAMILIES[family]
    for task in tasks + held_out:
        assert len(task.train) == u.N_DEMOS and len(task.test) == 1
        grids = [g for ex in (*task.train, *task.test) for g in (ex.input, ex.output)]
        assert all(max(x.shape) <= u.CANVAS and min(x.shape) >= u.MIN_SIDE for x in grids)
        assert spec.determined(task.train, task.test[0].input)
        assert all(not np.array_equal(ex.input, ex.output) for ex in (*task.train, *task.test))


def test_determined_refuses_demonstrations_that_leave_the_answer_open():
    spec = u.FAMILIES["dihedral"]
    # on a one-row grid a left-right flip and a half turn give the same output, on a 2x2 grid they do not
    demos = [Example(g([[1, 2, 3]]), g([[3, 2, 1]]))]
    assert not spec.determined(demos, g([[1, 2], [3, 4]]))
    assert spec.determined(demos + [Example(g([[1, 2], [3, 0]]), g([[2, 1], [0, 3]]))], g([[1, 2], [3, 4]]))
    colours = u.FAMILIES["colour_perm"]
    table = np.array([0, 2, 3, 1, 4, 5, 6, 7, 8, 9], dtype=np.uint8)
    demos = [Example(g([[1, 2]]), u.map_colours(g([[1, 2]]), table))]
    assert colours.determined(demos, g([[2, 1, 0]]))
    assert not colours.determined(demos, g([[3]]))  # colour 3's image was never shown


def test_chance_is_the_fraction_of_parameters_that_give_the_answer():
    grid = g([[1, 1], [1, 1]])  # every transform leaves it as it is
    task = Task("t", (), (Example(grid, grid),))
    assert u.chance("dihedral", task) == 1.0
    x = g([[1, 2], [3, 4]])
    task = Task("t", (), (Example(x, u.dihedral(x, 1)),))
    assert u.chance("dihedral", task) == pytest.approx(1 / 7)
    task = Task("t", (), (Example(g([[1, 0, 2]]), g([[3, 0, 4]])),))
    assert u.chance("colour_perm", task) == pytest.approx(1 / (9 * 8))
    objects = g([[5, 0, 5], [0, 0, 5]])  # sizes 1 and 2
    task = Task("t", (), (Example(objects, u.recolour_by_size(objects, {1: 1, 2: 2})),))
    assert u.chance("size_recolour", task) == pytest.approx(1 / (8 * 7))
    row = g([[1, 0, 0, 0, 0]])  # a 1-row grid: every dr gives the same rows; dc = 2 moves the cell to column 2
    task = Task("t", (), (Example(row, u.translate(row, (0, 2))),))
    assert u.chance("translate", task) == pytest.approx(5 / 24)  # dr in -2..2 with dc = 2


def test_write_challenges_round_trips_through_load_tasks(tmp_path):
    tasks = u.family_tasks("size_recolour", "heldout", 4)
    path = u.write_challenges(tasks, tmp_path / "heldout_challenges.json")
    loaded = load_tasks(str(path)).raise_if_problems().tasks
    assert [t.to_json() for t in loaded] == [t.to_json() for t in tasks]
    blind = u.write_challenges(tasks, tmp_path / "blind" / "x_challenges.json", with_solutions=False)
    assert not any(t.has_solutions for t in load_tasks(str(blind)).raise_if_problems().tasks)
    with pytest.raises(ValueError, match="challenges"):
        u.write_challenges(tasks, tmp_path / "tasks.json")


def test_method_result_accuracy_and_standard_error():
    result = u.MethodResult("m", {"a": True, "b": False, "c": True, "d": True}, train_cpu_s=1.0,
                            test_cpu_s_per_task=0.5)
    assert result.accuracy == 0.75
    assert result.standard_error == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
