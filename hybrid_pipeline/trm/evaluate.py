"""TRM evaluation as in the paper: predict every augmentation of each test input, map back, vote.

Each test input is predicted under every augmentation its task has in the checkpoint's plan (the
puzzle ids training used); predictions run the full `halt_max_steps` supervision steps, are cropped
at EOS, mapped back by the inverse augmentation and voted. Candidates rank by votes, then by mean
q_halt logit. Nothing here reads a test output except `score_votes`, which only scores.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hybrid_pipeline.arc.datasets import AugmentationPlan, TRMDataConfig, trm_rows
from hybrid_pipeline.arc.grids import Augmentation, crop_at_eos
from hybrid_pipeline.arc.tasks import Task
from hybrid_pipeline.arc.voting import VoteBox, rank_of
from hybrid_pipeline.trm.losses import exactly_right
from hybrid_pipeline.trm.model import TRM

PASS_AT = (1, 2, 5, 10)


@torch.no_grad()
def predict(model: TRM, inputs: torch.Tensor, puzzle_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run all halt_max_steps supervision steps. inputs (B, L) -> tokens (B, L), q_halt logits (B,)."""
    was_training = model.training
    model.eval()
    batch = {"inputs": inputs, "puzzle_identifiers": puzzle_ids}
    carry = model.initial_carry(batch)
    for _ in range(model.config.halt_max_steps):
        carry, outputs = model(carry, batch)
    model.train(was_training)
    return outputs["logits"].argmax(-1), outputs["q_halt_logits"]


@torch.no_grad()
def exact_right_by_step(model: TRM, inputs: torch.Tensor, labels: torch.Tensor,
                        puzzle_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run all halt_max_steps supervision steps; returns (right, q_halt), each (steps, B): whether
    each sequence is exactly right after each step (labels' PAD cells ignored), and its q_halt logit."""
    was_training = model.training
    model.eval()
    batch = {"inputs": inputs, "puzzle_identifiers": puzzle_ids}
    carry = model.initial_carry(batch)
    right, q_halt = [], []
    for _ in range(model.config.halt_max_steps):
        carry, outputs = model(carry, batch)
        right.append(exactly_right(outputs["logits"], labels))
        q_halt.append(outputs["q_halt_logits"])
    model.train(was_training)
    return torch.stack(right), torch.stack(q_halt)


def exact_accuracy_by_step(model: TRM, inputs: torch.Tensor, labels: torch.Tensor,
                           puzzle_ids: torch.Tensor) -> list[float]:
    """Fraction of sequences exactly right after each supervision step (labels' PAD cells ignored).

    This is how deep supervision is seen to work: accuracy should rise with the step.
    """
    right, _ = exact_right_by_step(model, inputs, labels, puzzle_ids)
    return right.float().mean(1).tolist()


def first_halt_step(q_halt: torch.Tensor) -> torch.Tensor:
    """(steps, B) q_halt logits -> (B,) the first step whose logit is > 0, or the last step if none is."""
    says_halt = q_halt > 0
    says_halt[-1] = True
    return says_halt.int().argmax(0)  # argmax gives the first of equal maxima


def exact_accuracy_at_halt(right: torch.Tensor, q_halt: torch.Tensor) -> float:
    """From `exact_right_by_step`'s (right, q_halt): the fraction exactly right when each sequence
    answers at the step where its Q head first says halt (`first_halt_step`), as ACT stops it in
    training.

    The paper's evaluation answers at the last step. The two differ when later steps rewrite answers
    that the Q head had judged right, which this measures.
    """
    return float(right.gather(0, first_halt_step(q_halt)[None]).float().mean())


def vote_predictions(model: TRM, tasks: Sequence[Task], plan: AugmentationPlan, *, canvas: int = 30,
                     batch_size: int = 64, max_augmentations: int | None = None,
                     progress: bool = False) -> VoteBox:
    """Predict each test input under its augmentations and vote in the original frame.

    Reads only test inputs (labels in the rows are never looked at). `max_augmentations` limits
    the views per task (the first ones in the plan, identity first).
    """
    cols = trm_rows([t.without_solutions() for t in tasks], TRMDataConfig(splits=("test",), translate=False,
                                                                          canvas=canvas), plan)
    keep = np.ones(len(cols["task_id"]), dtype=bool)
    if max_augmentations is not None:
        keep = _first_views(cols["task_id"], cols["puzzle_id"], max_augmentations)
    rows = np.flatnonzero(keep)
    device = next(model.parameters()).device
    box = VoteBox()
    for start in tqdm(range(0, len(rows), batch_size), desc="predict", disable=not progress, leave=False):
        idx = rows[start:start + batch_size]
        inputs = torch.from_numpy(cols["inputs"][idx].astype(np.int64)).to(device)
        pids = torch.from_numpy(cols["puzzle_id"][idx].astype(np.int64)).to(device)
        tokens, q_halt = predict(model, inputs, pids)
        for j, i in enumerate(idx):
            grid = crop_at_eos(tokens[j].cpu().numpy())
            if grid is not None:
                aug = Augmentation(int(cols["dihedral"][i]), tuple(int(c) for c in cols["colours"][i]))
                grid = aug.invert(grid)
            box.add(cols["task_id"][i], int(cols["pair_index"][i]), grid, float(q_halt[j]))
    return box


def _first_views(task_ids: list[str], puzzle_ids: np.ndarray, limit: int) -> np.ndarray:
    """Mask keeping, per task, the rows of its first `limit` puzzle ids (augmentations)."""
    allowed: dict[str, list[int]] = {}
    keep = np.zeros(len(task_ids), dtype=bool)
    for i, (tid, pid) in enumerate(zip(task_ids, puzzle_ids.tolist())):
        views = allowed.setdefault(tid, [])
        if pid not in views and len(views) < limit:
            views.append(pid)
        keep[i] = pid in views
    return keep


@dataclass
class VoteScore:
    """pass@K per task (fraction of its test inputs whose answer is among the top K candidates)."""

    pass_at: dict[int, float] = field(default_factory=dict)  # K -> per-task mean
    pass_at_outputs: dict[int, float] = field(default_factory=dict)  # K -> per-output mean
    oracle: float = 0.0  # per task: the answer was among the candidates at all
    ranks: dict[str, list[int | None]] = field(default_factory=dict)  # task -> rank per test input

    def to_dict(self) -> dict:
        return {"pass_at": {str(k): v for k, v in self.pass_at.items()},
                "pass_at_outputs": {str(k): v for k, v in self.pass_at_outputs.items()},
                "oracle": self.oracle, "ranks": self.ranks}


def score_votes(box: VoteBox, tasks: Sequence[Task], ks: Sequence[int] = PASS_AT) -> VoteScore:
    """pass@K from the ranked candidates against the tasks' test outputs (for reporting only)."""
    score = VoteScore()
    per_task: dict[int, list[float]] = {k: [] for k in ks}
    per_output: dict[int, list[bool]] = {k: [] for k in ks}
    oracle = []
    for task in tasks:
        ranks = [rank_of(box.ranked(task.id, i), ex.output) for i, ex in enumerate(task.test)]
        score.ranks[task.id] = ranks
        for k in ks:
            hits = [r is not None and r <= k for r in ranks]
            per_task[k].append(sum(hits) / len(hits))
            per_output[k].extend(hits)
        oracle.append(sum(r is not None for r in ranks) / len(ranks))
    n = max(len(tasks), 1)
    score.pass_at = {k: sum(v) / n for k, v in per_task.items()}
    score.pass_at_outputs = {k: sum(v) / max(len(v), 1) for k, v in per_output.items()}
    score.oracle = sum(oracle) / n
    return score


def evaluate_checkpoint(checkpoint: str | Path, tasks: Sequence[Task], out_dir: str | Path, *,
                        data_label: str = "", batch_size: int = 64, max_augmentations: int | None = None,
                        progress: bool = True) -> dict:
    """`hybrid-arc trm eval`: vote, write `submission.json`, `results.jsonl`, `summary.json`.

    Tasks whose grids do not fit the model's canvas, and tasks the checkpoint never trained on
    (predicted with the blank puzzle embedding and the identity view), are reported in the summary.
    Scores are computed only when every task has its test outputs.
    """
    from hybrid_pipeline.arc.files import atomic_write_json, atomic_write_text
    from hybrid_pipeline.arc.scoring import score_submission, write_submission
    from hybrid_pipeline.trm.checkpoint import load_trm

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, plan = load_trm(checkpoint, device=device)
    canvas = math.isqrt(model.config.seq_len)
    fits = [t for t in tasks if all(max(g.shape) <= canvas for ex in (*t.train, *t.test) for g in (ex.input,))]
    fit_ids = {t.id for t in fits}
    unseen = [t.id for t in fits if not plan.for_task(t.id)]
    box = vote_predictions(model, fits, plan, canvas=canvas, batch_size=batch_size,
                           max_augmentations=max_augmentations, progress=progress)
    attempts = {t.id: [box.top(t.id, i, 2) for i in range(len(t.test))] for t in fits}
    out_dir = Path(out_dir)
    write_submission(out_dir / "submission.json", attempts, tasks)

    scored = all(t.has_solutions for t in tasks) and bool(tasks)
    votes = score_votes(box, tasks) if scored else None
    lines = []
    for task in tasks:
        record = {"task_id": task.id, "fits_canvas": task.id in fit_ids, "seen_in_training": task.id not in unseen,
                  "test": [{"candidates": len(box.ranked(task.id, i)),
                            "top_votes": [c.votes for c in box.ranked(task.id, i)[:2]]}
                           for i in range(len(task.test))]}
        if votes is not None:
            for i, rank in enumerate(votes.ranks[task.id]):
                record["test"][i].update(rank_of_expected=rank, correct=rank is not None and rank <= 2)
        lines.append(json.dumps(record))
    atomic_write_text(out_dir / "results.jsonl", "".join(line + "\n" for line in lines))

    summary = {"checkpoint": str(checkpoint), "data": data_label, "tasks": len(tasks),
               "test_inputs": sum(len(t.test) for t in tasks), "skipped_too_large": len(tasks) - len(fits),
               "unseen_in_training": len(unseen), "views_per_task": max_augmentations}
    if votes is not None:
        report = score_submission(attempts, tasks)
        summary.update(task_score=report.task_score, output_score=report.output_score,
                       pass_at=votes.pass_at, pass_at_outputs=votes.pass_at_outputs, oracle=votes.oracle)
    atomic_write_json(out_dir / "summary.json", summary, indent=2)
    return summary
