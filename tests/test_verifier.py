import json
from fractions import Fraction

import numpy as np
import pytest

from hybrid_pipeline.arc.grids import dihedral
from hybrid_pipeline.arc.tasks import Example, Task, load_tasks
from verifier import GridVerifier, Verdict, VerifierConfig, infer_shape_rules
from verifier.grid_verifier import as_grid, grid_diff

REAL_IDS = ["67a3c6ac", "a416b8f3", "b1948b0a", "d631b094", "ff28f65a", "007bbfb7"]


@pytest.fixture(scope="module")
def real():
    return {t.id: t for t in load_tasks("arc-agi-1:training", ids=REAL_IDS).raise_if_problems().tasks}


def grid(rows):
    return np.array(rows, dtype=np.uint8)


def blank(h, w, colour=0):
    return np.full((h, w), colour, dtype=np.uint8)


def make_task(pairs, tests, task_id="hand"):
    return Task(task_id, tuple(Example(grid(i), grid(o)) for i, o in pairs),
                tuple(Example(grid(x)) for x in tests))


def shape_task(shapes, test_shape):
    """Task whose pairs have the given (input shape, output shape); all cells colour 0."""
    return Task("shapes", tuple(Example(blank(*i), blank(*o)) for i, o in shapes),
                (Example(blank(*test_shape)),))


def kinds(verdict):
    return [p.kind for p in verdict.problems]


# ---------------------------------------------------------------------------------------------
# Shape rules, computed by hand


@pytest.mark.parametrize("shapes, test_shape, allowed", [
    # same as input: 2x3->2x3, 4x1->4x1
    ([((2, 3), (2, 3)), ((4, 1), (4, 1))], (3, 5), [(3, 5)]),
    # transposed
    ([((2, 3), (3, 2)), ((4, 1), (1, 4))], (3, 5), [(5, 3)]),
    # fixed 2x2 whatever the input
    ([((2, 3), (2, 2)), ((4, 1), (2, 2))], (5, 5), [(2, 2)]),
    # scaled x2 rows, x1 cols
    ([((2, 3), (4, 3)), ((1, 2), (2, 2))], (3, 3), [(6, 3)]),
    # fractional: a third on each axis
    ([((6, 6), (2, 2)), ((9, 3), (3, 1))], (3, 9), [(1, 3)]),
    # one pair 3x3->3x3: same, transposed and fixed all fit, and they disagree on a 2x4 input
    ([((3, 3), (3, 3))], (2, 4), [(2, 4), (3, 3), (4, 2)]),
])
def test_the_candidate_must_have_a_shape_some_consistent_rule_gives(shapes, test_shape, allowed):
    task = shape_task(shapes, test_shape)
    verifier = GridVerifier()
    for shape in allowed:
        assert "shape" not in kinds(verifier.check(task, 0, blank(*shape)))
    verdict = verifier.check(task, 0, blank(7, 7))
    (problem,) = [p for p in verdict.problems if p.kind == "shape"]
    assert problem.where == "test 0"
    assert problem.expected == [list(s) for s in allowed]
    assert problem.got == [7, 7]


@pytest.mark.parametrize("shapes, test_shape", [
    ([((3, 3), (1, 2)), ((3, 3), (1, 3))], (3, 3)),  # no rule fits both pairs
    ([((6, 6), (2, 2)), ((9, 3), (3, 1))], (4, 4)),  # a third of 4 is not a whole row
])
def test_no_shape_check_when_no_rule_gives_a_shape(shapes, test_shape):
    task = shape_task(shapes, test_shape)
    assert GridVerifier().check(task, 0, blank(5, 1)).ok


def test_rules_inferred_from_real_tasks(real):
    def rules(task_id):
        t = real[task_id]
        return [(r.name, r.fixed, r.scale) for r in infer_shape_rules([(e.input, e.output) for e in t.train])]

    assert rules("b1948b0a") == [("same_as_input", None, None)]
    assert rules("a416b8f3") == [("scaled", None, (Fraction(1), Fraction(2)))]
    assert rules("ff28f65a") == [("fixed", (3, 3), None)]
    assert rules("007bbfb7") == [("fixed", (9, 9), None), ("scaled", None, (Fraction(3), Fraction(3)))]
    assert rules("d631b094") == []  # outputs 1x2, 1x3, 1x1, 1x4 from 3x3 inputs: count-dependent


# ---------------------------------------------------------------------------------------------
# Palette


def test_colours_from_no_train_output_nor_the_test_input_are_a_problem():
    # Train outputs use {0, 2}; the test input adds 1 and 6.
    task = make_task([([[1, 0]], [[2, 0]]), ([[1, 1]], [[2, 2]])], [[[6, 1]]])
    verifier = GridVerifier()
    assert verifier.check(task, 0, [[6, 2]]).ok
    verdict = verifier.check(task, 0, [[5, 1]])
    (problem,) = verdict.problems
    assert (problem.kind, problem.where, problem.expected, problem.got) == ("palette", "test 0", [0, 1, 2, 6], [5])
    assert verdict.score == pytest.approx(0.9)


def test_true_answers_of_real_tasks_pass_every_static_check(real):
    verifier = GridVerifier()
    for task in real.values():
        verdict = verifier.check(task, 0, task.test[0].output)  # the test reads it; the verifier may not
        assert verdict.ok and verdict.score == 1.0, (task.id, verdict)


# ---------------------------------------------------------------------------------------------
# Not a grid


@pytest.mark.parametrize("candidate, kind, detail", [
    ("no digits here", "parse", "no grid found"),
    ("012\n3x4\n", "parse", "row 1 col 1"),
    ("01\n2\n", "parse", "ragged"),
    ([[1, 2], [3]], "format", "row 1 has 1 cells, expected 2"),
    (np.zeros((2, 2, 2), dtype=int), "format", "3 dimensions"),
    (7, "format", "int"),
    (None, "format", "NoneType"),
    (np.zeros((31, 1), dtype=int), "size", "31x1"),
    (np.zeros((0, 3), dtype=int), "size", "0x"),
    ([[1, 10]], "values", "[10]"),
    ([[1, -1]], "values", "[-1]"),
    ([[1.5]], "values", "1.5"),
    ([[True, 0]], "values", "True"),
])
def test_a_candidate_that_is_not_a_grid_scores_zero_with_the_reason(candidate, kind, detail):
    task = shape_task([((1, 2), (1, 2))], (1, 2))
    verdict = GridVerifier().check(task, 0, candidate)
    assert not verdict.ok and verdict.score == 0.0
    (problem,) = verdict.problems
    assert problem.kind == kind and problem.where == "test 0"
    assert detail in problem.detail


def test_text_lists_and_integral_floats_are_read_as_grids():
    assert as_grid("answer:\n```\n12\n30\n```\n")[0].tolist() == [[1, 2], [3, 0]]
    assert as_grid([[1, 2], [3, 0]])[0].tolist() == [[1, 2], [3, 0]]
    assert as_grid(np.array([[1.0, 2.0]]))[0].tolist() == [[1, 2]]


# ---------------------------------------------------------------------------------------------
# Score


def test_score_is_one_minus_documented_penalties():
    task = make_task([([[1, 0]], [[2, 0]]), ([[1, 1]], [[2, 2]])], [[[1, 1]]])
    verifier = GridVerifier()
    assert verifier.check(task, 0, [[2, 2]]).score == 1.0
    assert verifier.check(task, 0, [[2, 2, 2]]).score == pytest.approx(0.5)  # shape
    assert verifier.check(task, 0, [[2, 5]]).score == pytest.approx(0.9)  # one foreign colour
    assert verifier.check(task, 0, [[5, 5, 3]]).score == pytest.approx(1 - 0.5 - 0.2)  # shape + two colours
    assert verifier.check(task, 0, [[3, 4, 5, 6, 7]]).score == pytest.approx(1 - 0.5 - 0.3)  # palette capped
    strict = GridVerifier(VerifierConfig(shape_penalty=1.0))
    assert strict.check(task, 0, [[2, 2, 2]]).score == 0.0


def test_verdicts_are_json_round_trippable():
    task = make_task([([[1, 0]], [[2, 0]])], [[[1, 1]]])
    verdict = GridVerifier().check(task, 0, [[5, 5, 5]])
    assert Verdict.from_dict(json.loads(json.dumps(verdict.to_dict()))) == verdict


def test_test_index_out_of_range_names_the_task():
    task = make_task([([[1]], [[2]])], [[[1]]])
    with pytest.raises(IndexError, match="task hand: test index 1 out of range, expected 0..0"):
        GridVerifier().check(task, 1, [[2]])


# ---------------------------------------------------------------------------------------------
# Leave-one-out and augmentations with scripted predictors


def recolour(pairs, x):
    """A predictor that learns a colour map from the pairs (cell by cell, same shapes only)."""
    mapping = {}
    for i, o in pairs:
        if i.shape == o.shape:
            mapping.update(zip(i.ravel().tolist(), o.ravel().tolist()))
    return np.vectorize(lambda c: mapping.get(c, c), otypes=[np.uint8])(x)


def dihedral_solver(pairs, x):
    """A predictor that finds the dihedral transform consistent with every pair."""
    for d in range(8):
        if all(np.array_equal(dihedral(i, d), o) for i, o in pairs):
            return dihedral(x, d)
    return None


LOO_TASK = [([[1, 0], [0, 1]], [[2, 0], [0, 2]]), ([[1, 1]], [[2, 2]]), ([[0, 1, 0]], [[0, 2, 0]])]


def test_leave_one_out_predicts_each_train_output_from_the_other_pairs():
    task = make_task(LOO_TASK, [[[1, 0, 1]]])
    calls = []

    def predict(pairs, x):
        calls.append((len(pairs), x.shape))
        if x.shape == (1, 2):  # wrong on train 1 only
            return grid([[2, 3]])
        return recolour(pairs, x)

    verdict = GridVerifier().check(task, 0, [[2, 0, 2]], predict=predict)
    # three held-out pairs, each predicted from the two others, then three augmentations
    assert calls[:3] == [(2, (2, 2)), (2, (1, 2)), (2, (1, 3))]
    assert len(calls) == 6
    (problem,) = [p for p in verdict.problems if p.kind == "leave_one_out"]
    assert problem.where == "train 1"
    assert problem.expected == {"shape": [1, 2], "cells": [[0, 1, 2]]}
    assert problem.got == {"shape": [1, 2], "cells": [[0, 1, 3]]}
    assert problem.detail.endswith("1 of 2 cells differ")
    assert verdict.score == pytest.approx(1 - 0.2 / 3, abs=1e-6)


def test_leave_one_out_reports_missing_predictions_and_caps_the_cell_list():
    task = make_task([(np.eye(5, dtype=int), np.eye(5, dtype=int)), ([[1]], [[1]])], [[[1]]])

    def predict(pairs, x):
        return None if x.shape == (1, 1) else np.full(x.shape, 7)

    verdict = GridVerifier(VerifierConfig(max_diff_cells=3)).check(task, 0, [[1]], predict=predict)
    loo = {p.where: p for p in verdict.problems if p.kind == "leave_one_out"}
    assert loo["train 0"].detail.endswith("25 of 25 cells differ (first 3 listed)")
    assert loo["train 0"].got["cells"] == [[0, 0, 7], [0, 1, 7], [0, 2, 7]]
    assert loo["train 1"].got is None and "no prediction" in loo["train 1"].detail


def test_a_predictor_that_ignores_the_demonstrations_disagrees_under_augmentation(real):
    task = real["67a3c6ac"]  # left-right flip
    answer = task.test[0].output
    verifier = GridVerifier()

    honest = verifier.check(task, 0, answer, predict=dihedral_solver)
    assert honest.ok and honest.score == 1.0

    # Always flips left-right in whatever frame it is given: right on every train pair and in the
    # original frame, wrong after rotation and transposition (flip is not preserved by them).
    hard_coded = verifier.check(task, 0, answer, predict=lambda pairs, x: np.fliplr(x))
    assert kinds(hard_coded) == ["augmentation", "augmentation"]
    assert [p.where for p in hard_coded.problems] == ["test 0 under t1_c0123456789",
                                                      "test 0 under t6_c0123456789"]
    assert hard_coded.score == pytest.approx(1 - 0.2 * 2 / 3, abs=1e-6)


def test_a_wrong_candidate_disagrees_with_a_good_predictor_under_every_augmentation(real):
    task = real["67a3c6ac"]
    wrong = task.test[0].input  # unflipped
    verdict = GridVerifier().check(task, 0, wrong, predict=dihedral_solver)
    problems = [p for p in verdict.problems if p.kind == "augmentation"]
    assert len(problems) == 3
    expected = grid_diff(task.test[0].output, wrong)
    assert problems[0].detail.endswith(expected.describe())


def test_predictions_computed_once_serve_many_candidates(real):
    task = real["b1948b0a"]
    verifier = GridVerifier()
    calls = []

    def predict(pairs, x):
        calls.append(1)
        return recolour(pairs, x)

    predictions = verifier.predictions(task, 0, predict)
    n = len(calls)
    candidates = [task.test[0].output, task.test[0].input, "0\n"]
    reused = [verifier.check(task, 0, c, predictions=predictions) for c in candidates]
    assert len(calls) == n
    assert reused == [verifier.check(task, 0, c, predict=predict) for c in candidates]
    with pytest.raises(ValueError, match="either predict or predictions"):
        verifier.check(task, 0, "0\n", predict=predict, predictions=predictions)


def test_the_predictor_cannot_change_the_task():
    task = make_task(LOO_TASK, [[[1, 0, 1]]])
    before = [ex.input.copy() for ex in task.train]

    def vandal(pairs, x):
        for i, o in pairs:
            i[...] = 9
            o[...] = 9
        x[...] = 9
        return x

    GridVerifier().check(task, 0, [[2, 0, 2]], predict=vandal)
    assert all(np.array_equal(b, ex.input) for b, ex in zip(before, task.train))
    assert task.test[0].input.tolist() == [[1, 0, 1]]


# ---------------------------------------------------------------------------------------------
# No peeking


class SealedExample(Example):
    """A test example whose expected output cannot be read: any access fails the test."""

    def __getattribute__(self, name):
        if name == "output":
            raise AssertionError("the verifier read a test output")
        return super().__getattribute__(name)


def sealed(task):
    return Task(task.id, task.train, tuple(SealedExample(ex.input, ex.output) for ex in task.test), task.source)


def test_verdicts_never_depend_on_test_outputs(real):
    verifier = GridVerifier()
    for task in real.values():
        answer = task.test[0].output
        candidates = [answer, task.test[0].input, "12\n34\n", np.zeros((30, 30), int), [[9]]]
        for candidate in candidates:
            for predict in (None, dihedral_solver, recolour):
                reference = verifier.check(task, 0, candidate, predict=predict).to_dict()
                assert verifier.check(task.without_solutions(), 0, candidate, predict=predict).to_dict() == reference
                assert verifier.check(sealed(task), 0, candidate, predict=predict).to_dict() == reference
