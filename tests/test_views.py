"""Predicting under views: the seeding rule, inversion back to the original frame, voting and ranking."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hybrid_pipeline.arc.grids import Augmentation
from hybrid_pipeline.arc.tasks import Example, Task
from hybrid_pipeline.arc.views import plan_views, predict_under_views, stable_int, task_augmentations

ROTATE_90 = Augmentation(1)                                 # np.rot90 once
SWAP_1_2 = Augmentation(0, (0, 2, 1, 3, 4, 5, 6, 7, 8, 9))  # colours 1 and 2 trade places


def one_test_task() -> Task:
    grid = np.array([[1, 2], [0, 0]], np.uint8)
    return Task("t0", (Example(grid, grid),), (Example(grid, np.array([[9]], np.uint8)),))


def test_two_views_agreeing_after_inversion_rank_first_with_two_votes():
    task = one_test_task()
    views = plan_views([task], lambda t: [Augmentation(), ROTATE_90, SWAP_1_2])
    answer = np.array([[1, 2], [3, 0]], np.uint8)
    other = np.array([[5]], np.uint8)
    # In each view's own frame, worked out by hand: the rotated view sees [[2, 0], [1, 3]] for `answer`,
    # the colour-swapped view writes `other` (5 is not swapped, so it maps back to itself).
    in_frame = {0: answer, 1: np.array([[2, 0], [1, 3]], np.uint8), 2: other}
    assert np.array_equal(ROTATE_90.apply(answer), in_frame[1])
    seen = []

    def predict(batch):
        seen.append([v.number for v in batch])
        return [[(in_frame[v.number], 0.0)] for v in batch]

    ranked = predict_under_views(views, predict, batch_size=2).ranked("t0", 0)
    assert seen == [[0, 1], [2]]  # consecutive batches of at most batch_size views
    assert [c.votes for c in ranked] == [2, 1]
    assert np.array_equal(ranked[0].grid, answer) and np.array_equal(ranked[1].grid, other)


def test_equal_votes_rank_by_mean_confidence_then_by_first_vote():
    task = one_test_task()
    views = plan_views([task], lambda t: [Augmentation(), SWAP_1_2, ROTATE_90])
    a, b, c = (np.array([[k]], np.uint8) for k in (5, 6, 7))  # colours none of the views change

    def predict(batch):  # one guess per view: a at confidence 0, b at 2, c at 0
        return [[(g, q)] for g, q in zip((a, b, c), (0.0, 2.0, 0.0))]

    ranked = predict_under_views(views, predict).ranked("t0", 0)
    assert [int(r.grid[0, 0]) for r in ranked] == [6, 5, 7]  # b: higher confidence; a before c: voted first
    nothing = predict_under_views(views, lambda batch: [[(None, 1.0)] for _ in batch])
    assert nothing.ranked("t0", 0) == []  # nothing readable casts no vote


def test_views_never_hold_a_test_output_and_come_task_by_augmentation_by_test_input():
    grid = np.array([[1]], np.uint8)
    two = Task("two", (Example(grid, grid),), (Example(grid, grid), Example(grid, grid)))
    views = plan_views([two, one_test_task()], lambda t: task_augmentations(t.id, 2, seed=0))
    assert [(v.task_id, v.number, v.test_index) for v in views] == [
        ("two", 0, 0), ("two", 0, 1), ("two", 1, 0), ("two", 1, 1), ("t0", 0, 0), ("t0", 1, 0)]
    assert all(ex.output is None for v in views for ex in v.task.test)
    assert np.array_equal(views[2].input, views[2].augmentation.apply(grid))
    with pytest.raises(ValueError, match="2 results for a batch of 1"):
        predict_under_views(views[:1], lambda batch: [[], []])


def test_a_task_gets_its_views_from_its_id_and_the_seed_alone():
    views = task_augmentations("00576224", 5, seed=3)
    assert views[0].is_identity and len({v.name for v in views}) == 5
    assert task_augmentations("00576224", 3, seed=3) == views[:3]  # more views keep the first ones
    assert task_augmentations("00576224", 5, seed=4) != views
    assert task_augmentations("009d5c81", 5, seed=3) != views
    assert all(v.colours[0] == 0 for v in views)  # background kept by default


def test_the_seeding_rule_gives_the_same_views_in_a_fresh_interpreter():
    code = ("import json; from hybrid_pipeline.arc.views import stable_int, task_augmentations; "
            "print(json.dumps([stable_int('00576224'), [a.name for a in task_augmentations('00576224', 6, 7)]]))")
    # a different hash seed in the child: the rule must not depend on Python's salted hash()
    env = {"PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd=Path(__file__).resolve().parents[1])
    number, names = json.loads(out.stdout)
    assert number == stable_int("00576224")
    assert names == [a.name for a in task_augmentations("00576224", 6, 7)]


def test_the_trm_plan_gives_a_task_the_same_views_whatever_the_other_tasks():
    from hybrid_pipeline.arc.datasets import AugmentationPlan

    a, b = one_test_task(), Task("t1", one_test_task().train, one_test_task().test)
    together = AugmentationPlan.sample([a, b], 3, seed=2)
    alone = AugmentationPlan.sample([b], 3, seed=2)
    assert [aug for _, aug in together.for_task("t1")] == [aug for _, aug in alone.for_task("t1")] \
        == task_augmentations("t1", 3, seed=2)
