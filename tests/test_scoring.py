import json

import numpy as np
import pytest

from hybrid_pipeline.arc.errors import ARCDataError
from hybrid_pipeline.arc.scoring import (read_submission, score_submission, submission_to_json,
                                         validate_submission, write_submission)
from hybrid_pipeline.arc.tasks import parse_task


def make_task(task_id, answers):
    """A task whose test outputs are the given grids (inputs are irrelevant to scoring)."""
    obj = {"train": [{"input": [[0]], "output": [[0]]}],
           "test": [{"input": [[0]], "output": a} for a in answers]}
    task, problems = parse_task(obj, task_id=task_id)
    assert not problems
    return task


A, B, C = [[1]], [[2, 2]], [[3], [3]]
TASKS = [make_task("one", [A]), make_task("two", [A, B]), make_task("three", [A, B, C])]


def g(x):
    return np.array(x, np.uint8)


def test_scores_agree_with_hand_computed_per_task_and_per_output_averages():
    submission = {
        "one": [[g(B), g(A)]],                           # solved by attempt 2
        "two": [[g(A), g(B)], [g(A), g(C)]],              # 1 of 2
        "three": [[g(C), g(C)], [g(B), g(A)], [g(B)]],   # 1 of 3; a 1x1 [[2]] != [[2, 2]]
    }
    report = score_submission(submission, TASKS)
    assert [t.solved for t in report.tasks] == [[True], [True, False], [False, True, False]]
    assert report.task_score == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert report.output_score == pytest.approx(3 / 6)
    assert (report.n_tasks, report.n_outputs, report.n_solved_outputs) == (3, 6, 3)


def test_only_two_attempts_count_and_shape_must_match():
    report = score_submission({"one": [[g(B), g(C), g(A)]]}, TASKS[:1])
    assert report.task_score == 0.0
    assert score_submission({"one": [[g([[1, 1]])]]}, TASKS[:1]).task_score == 0.0


def test_missing_task_scores_zero():
    assert score_submission({}, TASKS).task_score == 0.0


def test_write_then_read_round_trips_with_placeholders(tmp_path):
    path = tmp_path / "sub" / "submission.json"
    write_submission(path, {"two": [[g(A)], []]}, TASKS)
    obj = json.loads(path.read_text())
    assert set(obj) == {"one", "two", "three"}
    assert obj["two"] == [{"attempt_1": A, "attempt_2": [[0]]}, {"attempt_1": [[0]], "attempt_2": [[0]]}]
    assert len(obj["three"]) == 3
    sub = read_submission(path, TASKS)
    assert score_submission(sub, TASKS).n_solved_outputs == 1
    assert not list(path.parent.glob(".*tmp"))


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.pop("two"), "task two: task missing from submission"),
    (lambda s: s["two"].pop(), "task two: expected a list of 2 entries (one per test input), got 1 entry"),
    (lambda s: s["one"][0].pop("attempt_2"), "task one: test[0]: missing 'attempt_2'"),
    (lambda s: s["one"][0].update(attempt_1=[[1, 2], [3]]),
     "task one: test[0].attempt_1: row 1 has 1 cell, expected 2"),
    (lambda s: s.update(zzz=[]), "task zzz: task is not in the dataset being scored"),
])
def test_invalid_submission_names_task_and_problem(mutate, message):
    obj = submission_to_json({}, TASKS)
    mutate(obj)
    _, problems = validate_submission(obj, TASKS, file="s.json")
    assert len(problems) == 1 and str(problems[0]).startswith(f"s.json: {message}")


def test_read_submission_rejects_non_json(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{")
    with pytest.raises(ARCDataError, match="not valid JSON"):
        read_submission(path, TASKS)


def test_a_partial_submission_validates_on_the_tasks_it_holds_unless_every_task_is_required():
    obj = submission_to_json({}, TASKS)
    del obj["two"], obj["three"]
    submission, problems = validate_submission(obj, TASKS, file="s.json", require_all=False)
    assert list(submission) == ["one"] and problems == []
    _, problems = validate_submission(obj, TASKS, file="s.json")
    assert [str(p) for p in problems] == [
        "s.json: 2 of 3 tasks missing from submission (every task must be present): two, three"]


def test_ids_of_the_dataset_outside_the_selection_are_ignored_and_others_summed_in_one_problem():
    obj = submission_to_json({}, TASKS)
    submission, problems = validate_submission(obj, TASKS[:1], dataset_ids=["one", "two", "three"])
    assert list(submission) == ["one"] and problems == []
    _, problems = validate_submission(obj, TASKS[:1], file="s.json")
    assert [str(p) for p in problems] == ["s.json: 2 of the submission's 3 tasks are not in the dataset being "
                                          "scored: two, three"]
