"""Test-time training: fit puzzle-embedding rows for a task the TRM never trained on, then predict.

The TRM learns one puzzle-embedding row per (training task, augmentation view); a task that was not
in training has no row and is predicted with the blank row 0, which on ARC scores about nothing.
Test-time training gives such a task rows of its own, as training would have: one per augmentation
view (`arc.views.task_augmentations`, identity first), each started at the mean of the trained
rows (`init="mean"`) or at the trained row that already fits that view's demonstrations best
(`init="nearest"`: the network's loss on them under each of `candidates` trained rows drawn per
task, no training), then trained on the task's demonstrations, every one under every view (a view
conjugates the task's rule, so each view needs its own row). Only the demonstrations are read: the task is
stripped of its test outputs before anything else sees it. The TRM's cells see no other
demonstration than the one they predict, so a demonstration held out of its own row's training
would teach that row nothing: all of them train all rows.

Nothing of the caller's model changes: the adaptation runs on a copy of the network (without the
trained table, which can be large), whose table holds the blank row and the task's new rows. By
default only those rows train (Adam, `lr`); `network_lr` also fine-tunes the copy's network. The
adapted copy then predicts under the same views and votes, as `trm eval` does
(`trm.evaluate.vote_predictions`). A task the checkpoint's plan knows is predicted with its trained
rows, as is. Everything is a function of the model, the task and `TTTConfig` (seed included).

    box = vote_with_ttt(model, tasks, plan, TTTConfig(steps=100), canvas=10)
    box.ranked(task.id, 0)
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from hybrid_pipeline.arc.datasets import BLANK_PUZZLE, AugmentationPlan, TRMDataConfig, trm_rows
from hybrid_pipeline.arc.tasks import Task
from hybrid_pipeline.arc.views import stable_int, task_augmentations
from hybrid_pipeline.arc.voting import VoteBox
from hybrid_pipeline.trm.losses import LOSS_FUNCTIONS, act_loss, sequence_loss
from hybrid_pipeline.trm.model import TRM


INITS = ("mean", "nearest")
SELECTION_BATCH = 256  # sequences per forward while candidate rows are tried (at least one candidate's)


@dataclass(frozen=True)
class TTTConfig:
    """How a task without trained rows is adapted. `steps` 0 with `init` "mean" adapts nothing (the blank
    row, as before); with `init` "nearest" it picks the best-fitting candidate rows and trains nothing."""

    steps: int = 0  # optimiser steps per task
    lr: float = 1e-2  # Adam on the task's rows
    network_lr: float | None = None  # also fine-tune (a copy of) the network at this lr; None: rows only
    views: int | None = None  # rows (augmentation views) per task; None: as many as the plan's trained tasks have
    batch_size: int | None = None  # demonstration rows per step; None: all of them (views x demonstrations)
    loss_type: str = "stablemax"
    halt_loss_weight: float = 0.5
    seed: int = 0  # the views drawn, the candidate rows drawn and the rows sampled
    init: str = "mean"  # where rows start: "mean" of the trained rows, or per view the "nearest" candidate
    candidates: int = 32  # trained rows tried per task with init "nearest"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"ttt steps must be a non-negative integer, got {self.steps!r}")
        if not self.lr > 0 or (self.network_lr is not None and not self.network_lr > 0):
            raise ValueError(f"ttt lr and network_lr must be > 0, got {self.lr!r} and {self.network_lr!r}")
        for key in ("views", "batch_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"ttt {key} must be >= 1, got {value!r}")
        if self.loss_type not in LOSS_FUNCTIONS:
            raise ValueError(f"ttt loss_type must be one of {', '.join(LOSS_FUNCTIONS)}, got {self.loss_type!r}")
        if self.init not in INITS:
            raise ValueError(f"ttt init must be one of {', '.join(INITS)}, got {self.init!r}")
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int) or self.candidates < 1:
            raise ValueError(f"ttt candidates must be a positive integer, got {self.candidates!r}")

    @property
    def adapts(self) -> bool:
        """Whether a task without trained rows gets rows of its own: trained ones, or nearest ones."""
        return self.steps > 0 or self.init == "nearest"

    def to_dict(self) -> dict:
        """The settings, as recorded by the runs; `candidates` only where it matters (init "nearest")."""
        values = asdict(self)
        if self.init != "nearest":
            del values["candidates"]
        return values


class TaskRows(nn.Module):
    """A small trainable puzzle table standing in for `PuzzleEmbedding` in an adapted copy:
    row 0 the blank row, rows 1..n the task's views."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.clone())  # (1 + views, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight[ids]  # (B, dim)


@dataclass
class Adapted:
    """A task's adapted model: a copy of the network whose table is the task's `TaskRows`, the plan
    naming its rows (`<task id>/<view>`), and the mean training loss of each step."""

    model: TRM
    plan: AugmentationPlan
    losses: list[float] = field(default_factory=list)


def trained_row_ids(plan: AugmentationPlan) -> list[int]:
    """Ids of the rows the plan assigned to a task (every id but the blank one)."""
    return [i for i, name in enumerate(plan.names) if name != BLANK_PUZZLE]


def mean_row(model: TRM, plan: AugmentationPlan) -> torch.Tensor:
    """(dim,) the mean of the trained rows; the blank row when the plan has none."""
    table = model.puzzle_emb.weight
    ids = trained_row_ids(plan)
    return table[ids].mean(0) if ids else table[0]


def candidate_rows(plan: AugmentationPlan, task_id: str, config: TTTConfig) -> list[int]:
    """The trained rows `init="nearest"` tries for a task: `config.candidates` of them (all when there
    are fewer), drawn without replacement from the seed and the task id, in id order."""
    ids = trained_row_ids(plan)
    if len(ids) <= config.candidates:
        return ids
    rng = np.random.default_rng([config.seed, stable_int(task_id)])
    return sorted(int(i) for i in rng.choice(ids, size=config.candidates, replace=False))


@torch.no_grad()
def nearest_rows(network: TRM, rows: torch.Tensor, data: dict[str, torch.Tensor], views: int,
                 loss_type: str = "stablemax") -> torch.Tensor:
    """(views, dim): for each view, the row of `rows` (K, dim) under which `network` (all its
    supervision steps, no training) loses least on that view's demonstrations in `data` (whose
    puzzle_identifiers are 1..views). Ties go to the earlier row. `network`'s table is put back."""
    from hybrid_pipeline.trm.evaluate import final_outputs

    k, n = rows.shape[0], data["inputs"].shape[0]
    device = data["inputs"].device
    table = network.puzzle_emb
    network.puzzle_emb = TaskRows(torch.cat([rows[:1] * 0, rows]))  # row 0 unused; rows 1..K the candidates
    try:
        seq_loss = []
        per_chunk = max(1, SELECTION_BATCH // n)
        for first in range(0, k, per_chunk):
            ids = torch.arange(first + 1, min(first + per_chunk, k) + 1, device=device)
            outputs = final_outputs(network, data["inputs"].repeat(len(ids), 1), ids.repeat_interleave(n))
            seq_loss.append(sequence_loss(outputs["logits"], data["labels"].repeat(len(ids), 1), loss_type=loss_type))
    finally:
        network.puzzle_emb = table
    losses = torch.cat(seq_loss).view(k, n)
    of_view = torch.nn.functional.one_hot(data["puzzle_identifiers"] - 1, views).float()  # (n, views)
    return rows[(losses @ of_view).argmin(0)]  # a product, not index_add_: deterministic on CUDA too


def _network_copy(model: TRM) -> TRM:
    """A deep copy of `model` without its puzzle table (which can hold millions of rows)."""
    table = model.puzzle_emb
    model.puzzle_emb = None
    try:
        return copy.deepcopy(model)
    finally:
        model.puzzle_emb = table


def adapt(model: TRM, plan: AugmentationPlan, task: Task, config: TTTConfig, *, canvas: int) -> Adapted:
    """New rows for `task` (one per view, started as `config.init` says), trained for `config.steps`
    steps on its demonstrations under those views; returns the adapted copy. `model` is not changed."""
    if model.puzzle_emb is None:
        raise ValueError("test-time training needs a TRM with a puzzle-embedding table (puzzle_emb_ndim > 0)")
    task = task.without_solutions()
    views = config.views or plan.views_per_task
    augmentations = task_augmentations(task.id, views, config.seed)
    task_plan = AugmentationPlan([BLANK_PUZZLE] + [f"{task.id}/{aug.name}" for aug in augmentations])
    table = model.puzzle_emb.weight
    device = table.device
    cols = trm_rows([task], TRMDataConfig(splits=("train",), translate=False, canvas=canvas, seed=config.seed),
                    task_plan)
    data = {"inputs": torch.from_numpy(cols["inputs"].astype(np.int64)).to(device),  # (views * demos, L)
            "labels": torch.from_numpy(cols["labels"].astype(np.int64)).to(device),
            "puzzle_identifiers": torch.from_numpy(cols["puzzle_id"].astype(np.int64)).to(device)}

    adapted = _network_copy(model)
    with torch.no_grad():
        if config.init == "nearest" and trained_row_ids(plan):
            tried = table[candidate_rows(plan, task.id, config)].detach()
            first_rows = nearest_rows(adapted, tried, data, views, config.loss_type)
        else:
            first_rows = mean_row(model, plan).expand(views, -1)
        start = torch.cat([table[:1], first_rows])  # (1 + views, dim)
    adapted.puzzle_emb = TaskRows(start)

    train_network = config.network_lr is not None
    network = [p for name, p in adapted.named_parameters() if not name.startswith("puzzle_emb.")]
    for p in network:
        p.requires_grad_(train_network)
    groups = [{"params": [adapted.puzzle_emb.weight], "lr": config.lr}]
    if train_network:
        groups.append({"params": network, "lr": config.network_lr})
    optimizer = torch.optim.Adam(groups)

    n_rows = len(cols["inputs"])
    size = min(config.batch_size or n_rows, n_rows)
    generator = torch.Generator().manual_seed(stable_int(f"{config.seed}/{task.id}"))
    losses: list[float] = []
    adapted.train()
    carry = None
    for _ in range(config.steps):
        rows = torch.randperm(n_rows, generator=generator)[:size] if size < n_rows else torch.arange(n_rows)
        batch = {k: v[rows.to(device)] for k, v in data.items()}
        if carry is None:
            carry = adapted.initial_carry(batch)
        carry, outputs = adapted(carry, batch, generator=generator if device.type == "cpu" else None)
        result = act_loss(outputs, carry.current_data["labels"], loss_type=config.loss_type,
                          halt_loss_weight=config.halt_loss_weight)
        optimizer.zero_grad(set_to_none=True)
        (result.loss / size).backward()
        optimizer.step()
        losses.append(float(result.seq_loss.mean()))
    adapted.eval()
    for p in adapted.parameters():
        p.requires_grad_(False)
    return Adapted(adapted, task_plan, losses)


def needs_adaptation(task: Task, plan: AugmentationPlan) -> bool:
    """A task the plan has no trained rows for."""
    return not plan.for_task(task.id)


def vote_with_ttt(model: TRM, tasks: Sequence[Task], plan: AugmentationPlan, config: TTTConfig, *,
                  canvas: int, batch_size: int = 64, max_augmentations: int | None = None) -> VoteBox:
    """`trm.evaluate.vote_predictions`, except that when `config.adapts` each task without trained
    rows is first adapted (`adapt`) and voted under its own views (the first `max_augmentations`).
    Tasks with trained rows are voted as `vote_predictions` votes them. Reads no test output."""
    from hybrid_pipeline.trm.evaluate import vote_predictions

    unseen = [t for t in tasks if needs_adaptation(t, plan)] if config.adapts else []
    unseen_ids = {t.id for t in unseen}
    seen = [t for t in tasks if t.id not in unseen_ids]
    box = vote_predictions(model, seen, plan, canvas=canvas, batch_size=batch_size,
                           max_augmentations=max_augmentations) if seen else VoteBox()
    for task in unseen:
        adapted = adapt(model, plan, task, config, canvas=canvas)
        box.update(vote_predictions(adapted.model, [task], adapted.plan, canvas=canvas, batch_size=batch_size,
                                    max_augmentations=max_augmentations))
    return box
