"""The hybrid as a method of an unseen-task benchmark: trained on some tasks, asked about others.

A method takes training tasks (with solutions), held-out tasks stripped of their test outputs and a
budget, and returns its predictions; scoring happens outside (`score`). The hybrid here is
`HybridModel` trained with `train_joint` (experiments/configs/joint_tiny.yaml: the tiny-random
LLaMA, frozen, reads every demonstration in its prompt; the text->latent adapter conditions the TRM;
the refiner's prefix feeds the LM's answer) with NO puzzle embedding: a held-out task has no
identity of its own, so whatever the hybrid knows about it must come through the LM's reading of its
demonstrations. After joint training on the training tasks it predicts each held-out test output
with the TRM's grid head (`hybrid_method`, the benchmark's entry) and with the LM's answer.

The LM reads with random weights first. `--lm-steps N` also trains a tiny LLaMA for N steps on the
training tasks' text (each demonstration's output asked from the other demonstrations, under 4
augmentations, and each test output from the demonstrations: the answer tokens' loss), saves it as a
local checkpoint and runs the hybrid again on it, frozen; beside it, that LM answering alone, and with
LoRA test-time training on each held-out task's demonstrations (`--ttt-steps`,
`hybrid_pipeline.backbones.ttt`).

The task family when none is given (`dihedral_family`): every task applies one of the 8 dihedral
transforms (rotations, flips, transposes) to random small grids, and only its demonstrations say
which. Copying the test input is right for the 1 in 8 tasks whose transform is the identity; a method
that ignores the demonstrations can do no better than the most common transform.

    .venv/bin/python experiments/unseen_hybrid.py                      # 64 training, 32 held-out tasks
    .venv/bin/python experiments/unseen_hybrid.py --steps 600 --cpu-seconds 900
    .venv/bin/python experiments/unseen_hybrid.py --lm-steps 2000 --ttt-steps 32   # + a trained LM
    .venv/bin/python experiments/unseen_hybrid.py --quick              # a pipeline check, seconds

prints one table: exact match (pass@1) on the held-out test outputs, training CPU seconds and test
CPU seconds per task, for the hybrid's TRM head, its LM answer and the copy-the-input reference.
CPU seconds are this process's (`time.process_time`, torch on one thread); the budget's seconds also
cap training's wall clock, so a busy machine trains fewer steps, never more.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
JOINT_CONFIG = ROOT / "experiments" / "configs" / "joint_tiny.yaml"
CANVAS = 8  # joint_tiny's canvas: grids up to 7x7


@dataclass
class MethodBudget:
    cpu_seconds: float = 600.0  # training's cap (wall clock as well, see the module docstring)
    steps: int = 300            # optimiser steps of joint training
    seed: int = 0
    quick: bool = False         # a pipeline check: few steps, small batches


@dataclass
class MethodResult:
    name: str
    correct: dict[str, bool]  # held-out task id -> its first test output exactly right (pass@1); from `score`
    train_cpu_s: float
    test_cpu_s_per_task: float
    notes: str = ""
    predictions: dict[str, np.ndarray | None] = field(default_factory=dict)  # task id -> first test output


Method = Callable[[list, list, MethodBudget], MethodResult]


# --------------------------------------------------------------------------------------------------
# the task family


def dihedral_family(n_tasks: int, *, seed: int = 0, demonstrations: int = 3, sides: tuple[int, int] = (3, 5),
                    prefix: str = "dihedral") -> list:
    """`n_tasks` tasks; task i applies dihedral transform i % 8 to random grids (sides in `sides`,
    about half the cells coloured), with `demonstrations` pairs and one test pair."""
    from hybrid_pipeline.arc.grids import dihedral
    from hybrid_pipeline.arc.tasks import Example, Task

    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        transform = i % 8

        def pair() -> Example:
            h, w = (int(s) for s in rng.integers(sides[0], sides[1] + 1, size=2))
            grid = (rng.integers(1, 10, size=(h, w)) * (rng.random((h, w)) < 0.5)).astype(np.uint8)
            return Example(grid, dihedral(grid, transform))

        tasks.append(Task(f"{prefix}-{seed}-{i:03d}-t{transform}", tuple(pair() for _ in range(demonstrations)),
                          (pair(),), source="dihedral_family"))
    return tasks


def score(result: MethodResult, tasks: Sequence) -> MethodResult:
    """`result` with `correct` filled from its predictions against `tasks`' first test outputs."""
    from hybrid_pipeline.arc.scoring import grids_equal

    result.correct = {t.id: result.predictions.get(t.id) is not None
                      and grids_equal(result.predictions[t.id], t.test[0].output) for t in tasks}
    return result


# --------------------------------------------------------------------------------------------------
# the hybrid


def joint_config(task_dir: Path, out_dir: Path, budget: MethodBudget, backbone: str | None = None):
    """joint_tiny.yaml trained on the tasks in `task_dir`, nothing held out inside the run; the
    backbone is joint_tiny's tiny-random unless `backbone` names another (a local directory)."""
    from hybrid_pipeline.config import load_config
    from hybrid_pipeline.joint import JointTrainConfig

    steps = 10 if budget.quick else budget.steps
    overrides = [f"data={task_dir}", "tasks=null", "eval_data=null", "eval_tasks=null", f"max_steps={steps}",
                 f"warmup_steps={min(20, steps // 5)}", f"time_limit_s={budget.cpu_seconds}",
                 "num_augmentations=4", f"seed={budget.seed}", f"model.seed={budget.seed}", "log_with=[]",
                 f"log_every={max(1, steps // 10)}", f"checkpoint_every={steps}", f"out_dir={out_dir / 'run'}",
                 f"cache_dir={out_dir / 'cache'}", f"canvas={CANVAS}"]
    if budget.quick:
        overrides.append("batch_size=4")
    if backbone is not None:
        overrides.append(f"model.backbone.name_or_path={backbone}")
    return load_config(JointTrainConfig, JOINT_CONFIG, overrides)


def fit_hybrid(train_tasks: Sequence, budget: MethodBudget, work_dir: Path,
               backbone: str | None = None) -> tuple[Any, float, dict[str, Any]]:
    """(the trained HybridModel, training CPU seconds, the last logged metrics)."""
    from hybrid_pipeline.joint import train_joint

    task_dir = work_dir / "train"
    task_dir.mkdir(parents=True, exist_ok=True)
    for task in train_tasks:
        (task_dir / f"{task.id}.json").write_text(json.dumps(task.to_json()))
    start = time.process_time()
    result = train_joint(joint_config(task_dir, work_dir, budget, backbone), progress=False)
    return result.model, time.process_time() - start, {"steps": result.steps, **result.last_log}


def predict_hybrid(model: Any, held_out: Sequence, seed: int) -> tuple[dict[str, dict[str, Any]], float]:
    """({"trm": {task id: grid}, "lm": {...}}, test CPU seconds per task); reads no test output."""
    from hybrid_pipeline.joint import predict_attempts

    blind = [t.without_solutions() for t in held_out]
    start = time.process_time()
    predicted = predict_attempts(model, blind, augmentations=1, seed=seed,
                                 max_new_tokens=CANVAS * (CANVAS + 1) + 1)
    seconds = (time.process_time() - start) / max(len(blind), 1)
    first = {source: {t.id: (predicted[source][t.id][0][0] if predicted[source][t.id][0] else None) for t in blind}
             for source in ("trm", "lm")}
    return first, seconds


def hybrid_method(train_tasks: list, held_out: list, budget: MethodBudget) -> MethodResult:
    """The benchmark's entry: joint training on `train_tasks`, then the TRM head's prediction of each
    held-out task's first test output (`correct` is left for `score`)."""
    with tempfile.TemporaryDirectory(prefix="unseen-hybrid-") as tmp:
        model, train_cpu, last = fit_hybrid(train_tasks, budget, Path(tmp))
    predictions, test_cpu = predict_hybrid(model, held_out, budget.seed)
    return MethodResult("hybrid (TRM head)", {}, train_cpu, test_cpu, notes=_notes(last),
                        predictions=predictions["trm"])


def _notes(last: dict[str, Any]) -> str:
    return (f"{last.get('steps')} steps, last logged grid loss {last.get('grid_loss', float('nan')):.3f}, "
            f"cell accuracy {last.get('cell_accuracy', float('nan')):.3f}")


# --------------------------------------------------------------------------------------------------
# the language model alone


def pretrain_lm(train_tasks: Sequence, steps: int, directory: Path, *, seed: int = 0, lr: float = 1e-3,
                batch_size: int = 8) -> tuple[Path, float, list[float]]:
    """Train every weight of the tiny LLaMA (tiny-random, weights from `seed`) for `steps` steps on
    the training tasks' answer tokens and save it to `directory` (`from_pretrained` loads it).
    Returns (directory, CPU seconds, the loss of each step)."""
    import torch
    from tqdm.auto import tqdm

    from hybrid_pipeline.arc.text import grid_to_text, task_to_prompt
    from hybrid_pipeline.backbones import BackboneConfig, load_backbone
    from hybrid_pipeline.backbones.ttt import TTTConfig, answer_loss, answer_tokens, ttt_rows

    start = time.process_time()
    backbone = load_backbone(BackboneConfig(seed=seed))
    rows = [row for task in train_tasks for row in ttt_rows(task, TTTConfig(augment=3, seed=seed))]
    rows += [(task_to_prompt(task), grid_to_text(task.test[0].output)) for task in train_tasks]
    tokens = [answer_tokens(backbone.tokenizer, prompt, answer) for prompt, answer in rows]
    backbone.model.requires_grad_(True)
    optimizer = torch.optim.AdamW(backbone.model.parameters(), lr=lr, weight_decay=0.0)
    rng, queue, losses = np.random.default_rng(seed), [], []
    for _ in tqdm(range(steps), desc="train the LM", leave=False):
        while len(queue) < batch_size:
            queue += rng.permutation(len(tokens)).tolist()
        picked, queue = queue[:batch_size], queue[batch_size:]
        loss = answer_loss(backbone, [tokens[i] for i in picked])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    backbone.model.requires_grad_(False)
    backbone.model.save_pretrained(directory)
    backbone.tokenizer.save_pretrained(directory)
    return directory, time.process_time() - start, losses


def predict_lm(backbone_path: str, held_out: Sequence, ttt_steps: int = 0, *, seed: int = 0,
               ttt_lr: float = 1e-3) -> tuple[dict[str, np.ndarray | None], float]:
    """The LM's greedy answer to each held-out task's prompt (with a LoRA adapter trained on its
    demonstrations for `ttt_steps` steps), and the CPU seconds per task; reads no test output."""
    from hybrid_pipeline.arc.text import AnswerParseError, parse_grid, task_to_prompt
    from hybrid_pipeline.backbones import BackboneConfig, load_backbone
    from hybrid_pipeline.backbones.answer import BackboneAnswerModel, adapted
    from hybrid_pipeline.backbones.ttt import TTTConfig

    model = BackboneAnswerModel(load_backbone(BackboneConfig(name_or_path=backbone_path)))
    ttt = TTTConfig(steps=ttt_steps, lr=ttt_lr, seed=seed)
    predictions: dict[str, np.ndarray | None] = {}
    start = time.process_time()
    for task in held_out:
        blind = task.without_solutions()
        with adapted(model, blind, ttt):
            text = model.generate_answers(task_to_prompt(blind), 1, temperature=0.0,
                                          max_new_tokens=CANVAS * (CANVAS + 1) + 1, seed=seed)[0]
        try:
            predictions[task.id] = parse_grid(text)
        except AnswerParseError:
            predictions[task.id] = None
    return predictions, (time.process_time() - start) / max(len(held_out), 1)


def copy_input_method(train_tasks: list, held_out: list, budget: MethodBudget) -> MethodResult:
    """The reference that ignores the demonstrations: the test input as the answer."""
    return MethodResult("copy the test input", {}, 0.0, 0.0, predictions={t.id: t.test[0].input for t in held_out})


# --------------------------------------------------------------------------------------------------
# the table


def format_table(results: Sequence[MethodResult], title: str) -> str:
    lines = [title, f"{'method':<32} {'exact (pass@1)':>16} {'train CPU s':>12} {'test CPU s/task':>16}  notes"]
    for r in results:
        solved, n = sum(r.correct.values()), len(r.correct)
        lines.append(f"{r.name:<32} {f'{solved}/{n} = {100 * solved / max(n, 1):.1f}%':>16} "
                     f"{r.train_cpu_s:>12.1f} {r.test_cpu_s_per_task:>16.3f}  {r.notes}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-tasks", type=int, default=64)
    parser.add_argument("--held-out", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cpu-seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lm-steps", type=int, default=0, help="also train the tiny LM on the training tasks' "
                        "text for this many steps, and run the hybrid and the LM alone on it (default 0: no)")
    parser.add_argument("--ttt-steps", type=int, default=32, help="LoRA test-time training steps per held-out "
                        "task for the trained LM's second row (default 32; lr 1e-3, rank 8)")
    parser.add_argument("--quick", action="store_true", help="10 steps on 8 + 8 tasks: a pipeline check")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    n_train, n_held = (8, 8) if args.quick else (args.train_tasks, args.held_out)
    budget = MethodBudget(cpu_seconds=args.cpu_seconds, steps=args.steps, seed=args.seed, quick=args.quick)
    train = dihedral_family(n_train, seed=args.seed, prefix="train")
    held_out = dihedral_family(n_held, seed=args.seed + 1000, prefix="held")
    results = []
    with tempfile.TemporaryDirectory(prefix="unseen-hybrid-") as tmp:
        results += hybrid_rows(train, held_out, budget, Path(tmp) / "random", None, "random LM")
        if args.lm_steps:
            lm_dir, lm_cpu, losses = pretrain_lm(train, args.lm_steps, Path(tmp) / "lm", seed=args.seed)
            note = (f"LM: {args.lm_steps} steps, {lm_cpu:.0f} CPU s, answer loss {losses[0]:.2f} -> "
                    f"{np.mean(losses[-20:]):.2f}")
            for steps in (0, args.ttt_steps):
                predictions, cpu = predict_lm(str(lm_dir), held_out, steps, seed=args.seed)
                name = "trained LM alone" + (f" + TTT {steps}" if steps else "")
                results.append(MethodResult(name, {}, lm_cpu, cpu, note, predictions))
            for result in hybrid_rows(train, held_out, budget, Path(tmp) / "trained", str(lm_dir), "trained LM"):
                result.train_cpu_s += lm_cpu  # the LM's training is part of this method's
                results.append(result)
    results.append(copy_input_method(train, held_out, budget))
    for result in results:
        score(result, held_out)
    print(format_table(results, f"unseen dihedral tasks: {n_train} training, {n_held} held out (seed {args.seed}); "
                                "joint_tiny hybrid without puzzle embedding, frozen tiny LLaMA"))
    return 0


def hybrid_rows(train: Sequence, held_out: Sequence, budget: MethodBudget, work_dir: Path, backbone: str | None,
                label: str) -> list[MethodResult]:
    """The hybrid trained on `train` with `backbone`: its TRM head's and its LM answer's rows."""
    model, train_cpu, last = fit_hybrid(train, budget, work_dir, backbone)
    predictions, test_cpu = predict_hybrid(model, held_out, budget.seed)
    return [MethodResult(f"hybrid, {label}, TRM head", {}, train_cpu, test_cpu, _notes(last), predictions["trm"]),
            MethodResult(f"hybrid, {label}, LM answer", {}, train_cpu, test_cpu, "same model", predictions["lm"])]


if __name__ == "__main__":
    sys.exit(main())
