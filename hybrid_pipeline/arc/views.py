"""Predicting tasks under views: augmented copies whose predictions map back and vote.

A view is one test input of a task seen under one augmentation (`arc.grids.Augmentation`: a dihedral
transform, then a colour permutation). A model predicts in the view's frame; `predict_under_views`
maps every prediction back to the original frame by the inverse augmentation and votes identical
grids per test input (`arc.voting.VoteBox`). This is the TRM paper's evaluation, and it serves every
predictor here: the LLM-only baseline, the hybrid's held-out evaluation and the TRM's evaluation.

    views = plan_views(tasks, lambda task: task_augmentations(task.id, 8, seed))
    box = predict_under_views(views, predict, batch_size=64)   # predict(list[View]) -> guesses per view
    attempts = box.top(task.id, test_index, 2)

Which augmentations a task gets is one rule, `task_augmentations`: the identity first, then random
distinct ones drawn from `numpy.random.default_rng([seed, stable_int(task_id)])`. It depends on the
task id and the seed alone, not on the other tasks of a run, their order or the process (shards,
resumes and `limit` give a task the same views), and `stable_int` is a SHA-256 digest, the same in
every Python process (the built-in `hash()` of a string is salted per process). Asking for more views
keeps the first ones: the n views of a task are the first n of its n+1.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from hybrid_pipeline.arc.grids import Augmentation, sample_augmentations
from hybrid_pipeline.arc.tasks import Task
from hybrid_pipeline.arc.voting import VoteBox

# One prediction made in a view's frame: the grid (None when nothing readable came out: no vote) and
# its confidence, which breaks ties between grids with equal votes (the TRM's q_halt logit; 0 if none).
Guess = tuple[np.ndarray | None, float]


def stable_int(text: str) -> int:
    """A 63-bit integer from text, the same in every process and Python version."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def task_rng(task_id: str, seed: int) -> np.random.Generator:
    """The random generator a task's views are drawn from: a function of the task id and the seed only."""
    return np.random.default_rng([seed, stable_int(task_id)])


def task_augmentations(task_id: str, n: int, seed: int, *, fix_background: bool = True) -> list[Augmentation]:
    """The `n` distinct augmentations a task is predicted (or trained) under: the identity first, then
    random ones from `task_rng(task_id, seed)` (colour 0 kept when `fix_background`)."""
    return sample_augmentations(n, task_rng(task_id, seed), fix_background=fix_background)


@dataclass(frozen=True)
class View:
    """One test input of one task under one augmentation.

    `task` is the whole task in the view's frame (every demonstration and test input augmented) with
    its test outputs removed, so a predictor handed a view cannot read an expected answer. `number`
    says which of its task's augmentations this is (0 for the first, the identity under
    `task_augmentations`); callers use it to find what else they keep per view (a puzzle id, a seed).
    """

    task: Task
    test_index: int
    augmentation: Augmentation
    number: int

    @property
    def task_id(self) -> str:
        return self.task.id

    @property
    def input(self) -> np.ndarray:
        """The test input in the view's frame."""
        return self.task.test[self.test_index].input


def plan_views(tasks: Sequence[Task], augmentations: Callable[[Task], Sequence[Augmentation]]) -> list[View]:
    """Every test input of every task under each of the augmentations `augmentations(task)` gives it.

    Ordered by task, then augmentation, then test input: a batch of consecutive views holds few tasks.
    Each task loses its test outputs before anything else sees it, `augmentations` included.
    """
    views: list[View] = []
    for task in tasks:
        blind = task.without_solutions()
        for number, augmentation in enumerate(augmentations(blind)):
            seen = augmentation.apply_task(blind)
            views += [View(seen, i, augmentation, number) for i in range(len(seen.test))]
    return views


def vote_views(predictions: Iterable[tuple[View, Sequence[Guess]]], box: VoteBox | None = None) -> VoteBox:
    """Map each view's guesses back to the original frame (the inverse of the view's augmentation) and
    vote them per (task id, test index), into `box` or a new one.

    `box.ranked(task_id, test_index)` then lists the distinct grids by votes (most first), then by
    mean confidence (highest first), then by when each grid got its first vote: the views in the
    order given, and a view's guesses in their order.
    """
    box = VoteBox() if box is None else box
    for view, guesses in predictions:
        for grid, confidence in guesses:
            original = None if grid is None else view.augmentation.invert(grid)
            box.add(view.task_id, view.test_index, original, confidence)
    return box


def predict_under_views(views: Sequence[View], predict: Callable[[Sequence[View]], Sequence[Sequence[Guess]]], *,
                        batch_size: int | None = None, progress: bool = False, desc: str = "predict") -> VoteBox:
    """Predict every view, map the predictions back to the original frame and vote them.

    `predict` takes a batch of at most `batch_size` consecutive views (all of them when None) and
    returns, for each view in order, its guesses `(grid in the view's frame or None, confidence)`: one
    per view for a deterministic model, several for sampled answers. The returned box ranks as
    `vote_views` says: votes, then mean confidence, then first vote. `progress` shows a bar over the
    batches.
    """
    from tqdm.auto import tqdm

    size = max(len(views), 1) if batch_size is None else batch_size
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    box = VoteBox()
    for start in tqdm(range(0, len(views), size), desc=desc, disable=not progress, leave=False):
        batch = views[start:start + size]
        guesses = predict(batch)
        if len(guesses) != len(batch):
            raise ValueError(f"predict returned {len(guesses)} results for a batch of {len(batch)} views")
        vote_views(zip(batch, guesses), box)
    return box
