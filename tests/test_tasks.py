import numpy as np
import pytest

from conftest import task_json
from hybrid_pipeline.arc.errors import ARCDataError
from hybrid_pipeline.arc.tasks import find_leakage, load_tasks, merge_tasks, parse_task, same_pairs


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
     "train[0].input: row 1 has 1 cell, expected 2 (grid must be rectangular)"),
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


def test_an_id_or_pattern_that_matches_no_task_is_a_problem_naming_it(write_json):
    write_json("d/aaa.json", task_json())
    write_json("d/bbb.json", {"train": [], "test": []})  # broken: their own problems say why bbb, eee are absent
    write_json("d/eee.json", "{truncated")
    result = load_tasks(write_json("d/ccc.json", task_json()).parent, ids=["aaa", "zzz", "bbb", "c*", "q*", "eee"])
    assert [t.id for t in result.tasks] == ["aaa", "ccc"]
    assert result.unmatched == ["zzz", "q*"]
    assert str(result.problems[-1]).endswith("/d: no task matches zzz, q*") and len(result.problems) == 4
    nothing = load_tasks("no/such/dir", ids=["aaa"])  # nothing loaded: the spec's problem alone
    assert nothing.unmatched == [] and len(nothing.problems) == 1


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


def _pair(i, o):
    return {"input": [[i]], "output": [[o]]}


def test_one_id_with_different_pairs_in_two_sources_is_an_error_naming_the_id_and_both_files(write_json):
    first = write_json("a/abc.json", {"train": [_pair(1, 2)], "test": [_pair(3, 4)]})
    second = write_json("b/abc.json", {"train": [_pair(1, 2)], "test": [_pair(3, 5)]})
    sources = [(str(p.parent), load_tasks(p.parent).raise_if_problems().tasks) for p in (first, second)]
    with pytest.raises(ARCDataError) as error:
        merge_tasks(sources, say=pytest.fail)
    (problem,) = error.value.problems
    assert str(problem).startswith(f"task abc: two different tasks under one id, in {first} and in {second} ")


@pytest.mark.parametrize("second", [
    {"train": [_pair(3, 4), _pair(5, 6)], "test": [_pair(1, 2)]},  # the same pairs regrouped
    {"train": [_pair(1, 2), _pair(3, 4)], "test": [_pair(5, 6)]},  # an exact copy
], ids=["regrouped", "exact"])
def test_the_same_pairs_under_one_id_are_one_task_with_a_note(write_json, second):
    first = write_json("a/abc.json", {"train": [_pair(1, 2), _pair(3, 4)], "test": [_pair(5, 6)]})
    write_json("a/other.json", task_json())
    write_json("b/abc.json", second)
    a, b = (load_tasks(first.parent.parent / d).raise_if_problems().tasks for d in ("a", "b"))
    notes = []
    merged = merge_tasks([("a", a), ("b", b)], say=notes.append)
    assert [t.id for t in merged] == ["abc", "other"] and merged[0] is a[0]
    assert notes == ["note: merged 1 duplicate task (the same id and the same pairs in a and b); each is kept once"]


def test_a_test_input_without_its_output_is_not_the_same_pair():
    solved, _ = parse_task(task_json(), task_id="t")
    assert same_pairs(solved, solved.without_solutions()) is False
    assert same_pairs(solved, solved) is True


def test_arc_agi_2_training_reuses_arc_agi_1_ids_for_the_same_tasks_but_one(arc1_train, arc1_eval):
    arc2_train = load_tasks("arc-agi-2:training").tasks
    notes = []
    merged = merge_tasks([("arc-agi-1:training", arc1_train), ("arc-agi-2:training", arc2_train)], say=notes.append)
    assert len(merged) == 400 + 1000 - 391 and notes[0].startswith("note: merged 391 duplicate tasks ")
    with pytest.raises(ARCDataError, match="task ac0c5833: two different tasks under one id, in arc-agi-1:evaluation "
                                           "and in arc-agi-2:training"):
        merge_tasks([("arc-agi-1:evaluation", arc1_eval), ("arc-agi-2:training", arc2_train)])
