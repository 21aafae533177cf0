import numpy as np
import pytest

from conftest import task_json
from hybrid_pipeline.arc.errors import ARCDataError
from hybrid_pipeline.arc.tasks import find_leakage, load_tasks, parse_task


@pytest.mark.parametrize("spec, tasks, test_inputs", [
    ("arc-agi-1:training", 400, 416),
    ("arc-agi-1:evaluation", 400, 419),
    ("arc-agi-2:training", 1000, None),
    ("arc-agi-2:evaluation", 120, 167),
])
def test_bundled_splits_load_with_their_published_counts(spec, tasks, test_inputs):
    result = load_tasks(spec)
    assert result.problems == []
    assert len(result.tasks) == tasks
    if test_inputs is not None:
        assert sum(len(t.test) for t in result.tasks) == test_inputs
    assert all(t.has_solutions for t in result.tasks)
    task = result.tasks[0]
    assert task.train[0].input.dtype == np.uint8 and task.train[0].input.ndim == 2


def test_grids_are_read_exactly(write_json):
    path = write_json("abc.json", {"train": [{"input": [[1, 2, 3]], "output": [[3], [2], [1]]}],
                                   "test": [{"input": [[0, 9]], "output": [[9, 0]]}]})
    (task,) = load_tasks(path).raise_if_problems().tasks
    assert task.id == "abc"
    np.testing.assert_array_equal(task.train[0].input, [[1, 2, 3]])
    np.testing.assert_array_equal(task.train[0].output, [[3], [2], [1]])
    np.testing.assert_array_equal(task.test[0].output, [[9, 0]])


BAD_TASKS = [
    ("[1, 2]", "expected a task object with 'train' and 'test', got a list"),
    ({"test": [{"input": [[1]]}]}, "missing 'train' (a task needs 'train' and 'test' lists)"),
    ({"train": [], "test": [{"input": [[1]]}]}, "train: is empty, expected at least one pair"),
    ({"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]},
     "train[0].input: row 1 has 1 cells, expected 2 (grid must be rectangular)"),
    ({"train": [{"input": [[]], "output": [[1]]}], "test": [{"input": [[1]]}]},
     "train[0].input: row 0 has 0 cells, expected 1 to 30"),
    ({"train": [{"input": [[1]] * 31, "output": [[1]]}], "test": [{"input": [[1]]}]},
     "train[0].input: grid has 31 rows, expected 1 to 30"),
    ({"train": [{"input": [[1, 10]], "output": [[1]]}], "test": [{"input": [[1]]}]},
     "train[0].input: row 0 col 1 is 10, expected an int 0..9"),
    ({"train": [{"input": [[1, 2.0]], "output": [[1]]}], "test": [{"input": [[1]]}]},
     "train[0].input: row 0 col 1 is 2.0, expected an int 0..9"),
    ({"train": [{"input": [[1, True]], "output": [[1]]}], "test": [{"input": [[1]]}]},
     "train[0].input: row 0 col 1 is True, expected an int 0..9"),
    ({"train": [{"input": [[1]], "output": [["1"]]}], "test": [{"input": [[1]]}]},
     "train[0].output: row 0 col 0 is '1', expected an int 0..9"),
    ({"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}, "train[0]: missing 'output'"),
]


@pytest.mark.parametrize("obj, message", BAD_TASKS)
def test_each_malformed_task_is_named_with_file_task_place_and_expectation(write_json, obj, message):
    path = write_json("t1.json", obj)
    result = load_tasks(path)
    assert result.tasks == []
    assert [str(p) for p in result.problems] == [f"{path}: task t1: {message}"]


def test_not_json_names_line_and_column(write_json):
    path = write_json("broken.json", '{"train": [')
    (problem,) = load_tasks(path).problems
    assert str(problem).startswith(f"{path}: not valid JSON: Expecting value at line 1 column 12")


def test_missing_test_output_is_a_problem_only_where_a_solution_is_expected(write_json):
    path = write_json("t.json", task_json(with_solutions=False))
    assert load_tasks(path).problems == []
    (problem,) = load_tasks(path, require_solutions=True).problems
    assert str(problem) == f"{path}: task t: test[0]: missing 'output' (a solution is expected here)"


def test_directory_reports_every_bad_file_and_keeps_the_good_ones(tmp_path, write_json):
    write_json("d/good1.json", task_json())
    write_json("d/good2.json", task_json(train_pairs=3))
    write_json("d/bad_json.json", "not json")
    write_json("d/bad_grid.json", {"train": [{"input": [[1, 2], [3]], "output": [[1]]}],
                                   "test": [{"input": [[1]]}]})
    result = load_tasks(tmp_path / "d")
    assert [t.id for t in result.tasks] == ["good1", "good2"]
    assert sorted(p.file.rsplit("/", 1)[1] for p in result.problems) == ["bad_grid.json", "bad_json.json"]


def test_kaggle_challenges_file_reads_solutions_beside_it(write_json):
    challenges = {"aaa": task_json(test_pairs=2, with_solutions=False), "bbb": task_json(with_solutions=False)}
    path = write_json("arc_eval_challenges.json", challenges)
    result = load_tasks(path)
    assert [t.id for t in result.tasks] == ["aaa", "bbb"] and not result.tasks[0].has_solutions

    write_json("arc_eval_solutions.json", {"aaa": [[[5]], [[6, 7]]], "bbb": [[[8]]]})
    tasks = load_tasks(path).raise_if_problems().tasks
    np.testing.assert_array_equal(tasks[0].test[1].output, [[6, 7]])
    np.testing.assert_array_equal(tasks[1].test[0].output, [[8]])


def test_kaggle_solutions_with_wrong_count_are_named(write_json):
    path = write_json("x_challenges.json", {"aaa": task_json(test_pairs=2, with_solutions=False)})
    sol = write_json("x_solutions.json", {"aaa": [[[5]]]})
    (problem,) = load_tasks(path).problems
    assert str(problem) == (f"{sol}: task aaa: expected a list of 2 solution grids (one per test input), "
                            "got 1 grids")


def test_selection_by_id_glob_and_limit():
    tasks = load_tasks("arc-agi-1:evaluation", ids=["00*", "0a1d4ef5"]).tasks
    assert [t.id for t in tasks] == ["00576224", "009d5c81", "00dbd492", "0a1d4ef5"]
    assert len(load_tasks("arc-agi-1:evaluation", ids=["00*"], limit=2).tasks) == 2
    result = load_tasks("arc-agi-1:evaluation", ids=["nope"])
    assert result.tasks == [] and "no task matches nope" in str(result.problems[0])


def test_unknown_spec_is_one_clear_problem():
    with pytest.raises(ARCDataError) as err:
        load_tasks("arc-agi-3:evaluation").raise_if_problems()
    assert "unknown bundled split 'arc-agi-3:evaluation'" in str(err.value)


def test_without_solutions_hides_only_test_outputs(arc1_eval):
    task = arc1_eval[0]
    blind = task.without_solutions()
    assert all(ex.output is None for ex in blind.test)
    assert all(ex.output is not None for ex in blind.train)
    assert blind.content_hash() == task.content_hash()


def test_content_hash_ignores_id_and_pair_order():
    a, _ = parse_task(task_json(train_pairs=3), task_id="a")
    obj = task_json(train_pairs=3)
    obj["train"].reverse()
    b, _ = parse_task(obj, task_id="b")
    assert a.content_hash() == b.content_hash()
    obj["train"][0]["output"][0][0] = 9
    c, _ = parse_task(obj, task_id="c")
    assert c.content_hash() != a.content_hash()


def test_arc_agi_2_training_leaks_376_arc_agi_1_evaluation_tasks(arc1_eval):
    arc2_train = load_tasks("arc-agi-2:training").tasks
    leaks = find_leakage(arc1_eval, arc2_train)
    assert len(leaks) == 376
    assert all(eval_id == train_id for eval_id, train_id in leaks)
    assert find_leakage(load_tasks("arc-agi-2:evaluation").tasks, arc2_train) == []
