"""TRM evaluation as in the paper: predict every augmentation of each test input, map back, vote.

Each test input is predicted under every augmentation its task has in the checkpoint's plan (the
puzzle ids training used); predictions run the full `halt_max_steps` supervision steps, are cropped
at EOS, mapped back by the inverse augmentation and voted. Candidates rank by votes, then by mean
q_halt logit. Nothing here reads a test output except `score_votes`, which only scores.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hybrid_pipeline.arc.datasets import AugmentationPlan
from hybrid_pipeline.arc.grids import IDENTITY, Augmentation, crop_at_eos, encode_grid
from hybrid_pipeline.arc.tasks import Task
from hybrid_pipeline.arc.views import View, plan_views, predict_under_views
from hybrid_pipeline.arc.voting import VoteBox, rank_of
from hybrid_pipeline.trm.losses import exactly_right
from hybrid_pipeline.trm.model import TRM, WEIGHTS_NAME
from hybrid_pipeline.trm.ttt import TTTConfig, vote_with_ttt

PASS_AT = (1, 2, 5, 10)
# What a resumed evaluation (and each shard of one) must share: the same weights voting the same views,
# after the same test-time training (None: none).
RESUME_KEYS = ("command", "weights_sha256", "views", "ttt")
# Settings added since older runs were recorded, with the value those runs ran with.
IMPLIED_BY_OLDER_RUNS = {"ttt.init": "mean"}


@torch.no_grad()
def final_outputs(model: TRM, inputs: torch.Tensor, puzzle_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """The TRM's outputs (logits (B, L, V), q_halt logits (B,), ...) after all halt_max_steps
    supervision steps from a fresh carry, in eval mode (the model's mode is put back)."""
    was_training = model.training
    model.eval()
    batch = {"inputs": inputs, "puzzle_identifiers": puzzle_ids}
    carry = model.initial_carry(batch)
    for _ in range(model.config.halt_max_steps):
        carry, outputs = model(carry, batch)
    model.train(was_training)
    return outputs


def predict(model: TRM, inputs: torch.Tensor, puzzle_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run all halt_max_steps supervision steps. inputs (B, L) -> tokens (B, L), q_halt logits (B,)."""
    outputs = final_outputs(model, inputs, puzzle_ids)
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

    The views of a task are its augmentations in the plan, with their puzzle ids (the first
    `max_augmentations` of them, identity first); a task the plan does not know is predicted once,
    unaugmented, with the blank puzzle id 0. Reads only test inputs. Views of many tasks share a
    batch; each prediction is cropped at EOS (no vote when there is no grid) and voted with its q_halt
    logit as confidence (`arc.views.predict_under_views`).
    """
    puzzle_ids: dict[str, list[int]] = {}

    def augmentations(task: Task) -> list[Augmentation]:
        known = (plan.for_task(task.id) or [(0, IDENTITY)])[:max_augmentations]
        puzzle_ids[task.id] = [pid for pid, _ in known]
        return [aug for _, aug in known]

    device = next(model.parameters()).device

    def predict_batch(batch: Sequence[View]) -> list[list[tuple[np.ndarray | None, float]]]:
        inputs = np.stack([encode_grid(v.input, (0, 0), canvas) for v in batch]).astype(np.int64)  # [B,L]
        pids = [puzzle_ids[v.task_id][v.number] for v in batch]
        tokens, q_halt = predict(model, torch.from_numpy(inputs).to(device), torch.tensor(pids, device=device))
        return [[(crop_at_eos(t), float(q))] for t, q in zip(tokens.cpu().numpy(), q_halt.tolist())]

    return predict_under_views(plan_views(tasks, augmentations), predict_batch, batch_size=batch_size,
                               progress=progress)


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
    return score_ranks({t.id: [rank_of(box.ranked(t.id, i), ex.output) for i, ex in enumerate(t.test)]
                        for t in tasks}, ks)


def score_ranks(ranks: dict[str, list[int | None]], ks: Sequence[int] = PASS_AT) -> VoteScore:
    """pass@K from each task's rank of the expected grid per test input (None: never predicted)."""
    score = VoteScore(ranks=dict(ranks))
    per_task: dict[int, list[float]] = {k: [] for k in ks}
    per_output: dict[int, list[bool]] = {k: [] for k in ks}
    oracle = []
    for task_ranks in ranks.values():
        for k in ks:
            hits = [r is not None and r <= k for r in task_ranks]
            per_task[k].append(sum(hits) / len(hits))
            per_output[k].extend(hits)
        oracle.append(sum(r is not None for r in task_ranks) / len(task_ranks))
    n = max(len(ranks), 1)
    score.pass_at = {k: sum(v) / n for k, v in per_task.items()}
    score.pass_at_outputs = {k: sum(v) / max(len(v), 1) for k, v in per_output.items()}
    score.oracle = sum(oracle) / n
    return score


def evaluate_checkpoint(checkpoint: str | Path, tasks: Sequence[Task], out_dir: str | Path, *,
                        data_label: str = "", batch_size: int = 64, max_augmentations: int | None = None,
                        ttt: TTTConfig | None = None, resume: bool = False, overwrite: bool = False,
                        progress: bool = True) -> dict:
    """`hybrid-arc trm eval`: vote, and write `results.jsonl` (a line per task, appended as each
    batch of tasks is done), `submission.json` (rewritten after each batch) and `summary.json`
    (at the end, and with `interrupted: true` on Ctrl-C or SIGTERM; `runs.finish_run`: a signal
    lets the batch's writes finish, then stops the run).

    The out dir is a run (`hybrid_pipeline.runs.open_run`): `resume` continues one made from the
    same checkpoint with the same views (`RESUME_KEYS`), skipping the tasks it holds; `overwrite`
    replaces a run there. Tasks whose grids do not fit the model's canvas, and tasks the checkpoint
    never trained on, are reported in the summary. Those are predicted with the blank puzzle
    embedding and the identity view, or, when `ttt.adapts`, adapted to first (`trm.ttt`: new rows
    started at the trained rows' mean or at the best-fitting trained rows, trained on their
    demonstrations, voted under their own views); `ttt` is a setting of the run, which a resume must
    share. Scores are computed only when every task has its test outputs.
    """
    from hybrid_pipeline.arc.files import append_jsonl, atomic_write_json
    from hybrid_pipeline.arc.scoring import write_submission
    from hybrid_pipeline.runs import finish_run, kept_records, open_run
    from hybrid_pipeline.trm.checkpoint import CheckpointError, load_trm

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, plan = load_trm(checkpoint, device=device)
    ttt = ttt if ttt is not None and ttt.adapts else None
    if ttt and model.puzzle_emb is None:
        raise CheckpointError(f"{checkpoint}: test-time training needs a puzzle-embedding table, and this TRM has "
                              "none (puzzle_emb_ndim 0); evaluate it without --ttt-steps and --ttt-init")
    out_dir = Path(out_dir)
    # The weights' digest, not only their path: a checkpoint retrained in place is another model.
    digest = hashlib.sha256((Path(checkpoint) / WEIGHTS_NAME).read_bytes()).hexdigest()
    settings = {"command": "trm eval", "checkpoint": str(Path(checkpoint).resolve()), "weights_sha256": digest,
                "views": max_augmentations, "batch_size": batch_size, "ttt": ttt.to_dict() if ttt else None}
    continuing = open_run(out_dir, settings, resume=resume, overwrite=overwrite, compare=RESUME_KEYS,
                          implied=IMPLIED_BY_OLDER_RUNS)
    canvas = math.isqrt(model.config.seq_len)
    records = kept_records(out_dir / RESULTS, tasks, continuing)
    todo = [t for t in tasks if t.id not in records]
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="eval", unit="task", disable=not progress)

    def finish(interrupted: bool) -> dict:
        bar.close()
        write_submission(out_dir / SUBMISSION, _attempts(records), tasks)
        summary = summarize(tasks, records, checkpoint=checkpoint, data_label=data_label, views=max_augmentations,
                            interrupted=interrupted, ttt_steps=ttt.steps if ttt else 0,
                            ttt_init=ttt.init if ttt else None)
        atomic_write_json(out_dir / SUMMARY, summary, indent=2)
        return summary

    with finish_run(out_dir, finish) as loop:
        # a task adapted at test time is a chunk of its own: its record is written when it is done
        for chunk in _chunks(todo, plan, batch_size, max_augmentations, unseen_rows=batch_size if ttt else 1):
            fits = [t for t in chunk if _fits(t, canvas)]
            box = vote_with_ttt(model, fits, plan, ttt or TTTConfig(), canvas=canvas, batch_size=batch_size,
                                max_augmentations=max_augmentations) if fits else VoteBox()
            fit_ids = {t.id for t in fits}
            chunk_records = [_record(task, box, fits=task.id in fit_ids, seen=bool(plan.for_task(task.id)))
                             for task in chunk]
            with loop.writing():
                for record in chunk_records:
                    append_jsonl(out_dir / RESULTS, record)
                    records[record["task_id"]] = record
                write_submission(out_dir / SUBMISSION, _attempts(records), tasks)
            bar.update(len(chunk))
    return loop.finished


RESULTS, SUBMISSION, SUMMARY = "results.jsonl", "submission.json", "summary.json"


def _fits(task: Task, canvas: int) -> bool:
    return all(max(g.shape) <= canvas for ex in (*task.train, *task.test) for g in (ex.input,))


def _chunks(tasks: Sequence[Task], plan: AugmentationPlan, batch_size: int,
            max_augmentations: int | None, unseen_rows: int = 1) -> list[list[Task]]:
    """Consecutive tasks grouped so that each group's predictions fill about one batch (a task
    with more views than a batch is a group of its own); a task the plan does not know counts
    `unseen_rows` views."""
    chunks: list[list[Task]] = []
    rows = 0
    for task in tasks:
        views = len(plan.for_task(task.id)) or unseen_rows
        if max_augmentations is not None:
            views = min(views, max_augmentations)
        need = views * len(task.test)
        if not chunks or rows + need > batch_size:
            chunks.append([])
            rows = 0
        chunks[-1].append(task)
        rows += need
    return chunks


def _record(task: Task, box: VoteBox, *, fits: bool, seen: bool) -> dict:
    """A task's line of results.jsonl: its two attempts per test input (what the submission holds),
    the votes, and where the expected grid ranked when the task has its test outputs."""
    tests = []
    for i, example in enumerate(task.test):
        ranked = box.ranked(task.id, i)
        entry = {"attempts": [c.grid.tolist() for c in ranked[:2]], "candidates": len(ranked),
                 "top_votes": [c.votes for c in ranked[:2]]}
        if example.output is not None:
            rank = rank_of(ranked, example.output)
            entry.update(rank_of_expected=rank, correct=rank is not None and rank <= 2)
        tests.append(entry)
    return {"task_id": task.id, "fits_canvas": fits, "seen_in_training": seen, "test": tests}


def _attempts(records: dict[str, dict]) -> dict[str, list[list[np.ndarray]]]:
    return {task_id: [[np.array(g, dtype=np.uint8) for g in t["attempts"]] for t in r["test"]]
            for task_id, r in records.items()}


def summarize(tasks: Sequence[Task], records: dict[str, dict], *, checkpoint: str | Path, data_label: str,
              views: int | None, interrupted: bool, ttt_steps: int = 0, ttt_init: str | None = None) -> dict:
    """What summary.json holds; scores (pass@K, per task and per output) only once every task is
    done and every task has its test outputs."""
    from hybrid_pipeline.arc.scoring import score_submission

    done = [t for t in tasks if t.id in records]
    summary = {"checkpoint": str(checkpoint), "data": data_label, "tasks": len(tasks), "tasks_done": len(done),
               "test_inputs": sum(len(t.test) for t in tasks),
               "skipped_too_large": sum(not records[t.id]["fits_canvas"] for t in done),
               "unseen_in_training": sum(records[t.id]["fits_canvas"] and not records[t.id]["seen_in_training"]
                                         for t in done),
               "views_per_task": views, "ttt_steps": ttt_steps, "ttt_init": ttt_init, "interrupted": interrupted}
    if done and all(t.has_solutions for t in tasks) and len(done) == len(tasks):
        votes = score_ranks({t.id: [e["rank_of_expected"] for e in records[t.id]["test"]] for t in tasks})
        report = score_submission(_attempts(records), tasks)
        summary.update(task_score=report.task_score, output_score=report.output_score,
                       pass_at=votes.pass_at, pass_at_outputs=votes.pass_at_outputs, oracle=votes.oracle)
    return summary


def finish_merged(tasks: Sequence[Task], records: dict[str, dict], settings: dict, shown: dict, *,
                  interrupted: bool) -> tuple[dict, dict[str, str]]:
    """The summary of an evaluation joined from its shards (`hybrid-arc merge`), from a shard's
    summary `shown` (the checkpoint and data as the command named them); no other file."""
    return summarize(tasks, records, checkpoint=shown["checkpoint"], data_label=shown["data"],
                     views=shown["views_per_task"], interrupted=interrupted, ttt_steps=shown.get("ttt_steps", 0),
                     ttt_init=shown.get("ttt_init")), {}
