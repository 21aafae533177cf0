"""The hybrid as a method of the unseen-task benchmark: trained on some tasks, asked about others.

A method (`unseen_tasks.Method`) gets a family's training tasks (with solutions), its held-out tasks
without their test outputs and a `MethodBudget`; it returns a `MethodResult` whose `predictions`
hold its one answer per held-out task, and `unseen_tasks.score` fills `correct` from the
solutions it never saw. Methods here:

- `hybrid_method`: `HybridModel` trained with `train_joint` on the training tasks
  (experiments/configs/joint_tiny.yaml: a frozen tiny LLaMA reads every demonstration in its
  prompt, the text->latent adapter conditions the TRM, the refiner's prefix feeds the LM's answer)
  with NO puzzle embedding: a held-out task has no identity of its own, so whatever the hybrid knows
  about it comes through the LM's reading of its demonstrations. Answers with the TRM's grid head;
  `main` also scores the LM's answer of the same model. The LM has random weights
  unless `backbone` names a checkpoint. With `budget.test_steps` N > 0, test-time training: for each
  held-out task the trained parts (adapters, TRM, refiner) take N more steps on its demonstrations
  (each asked from the others), answer, and go back to the jointly trained weights.
- `lm_ttt_method`: the tiny LLaMA trained on the training tasks' text (`pretrain_lm`: each
  demonstration's output asked from the other demonstrations under 4 augmentations, and each test
  output from the demonstrations; loss on the answer tokens), answering alone, after LoRA test-time
  training on each held-out task's demonstrations for `budget.test_steps` steps
  (`hybrid_pipeline.backbones.ttt`; 0: none).

    .venv/bin/python experiments/unseen_hybrid.py                               # dihedral, random LM
    .venv/bin/python experiments/unseen_hybrid.py --families dihedral,colour_perm --lm-steps 2000
    .venv/bin/python experiments/unseen_hybrid.py --quick                       # a pipeline check

prints one table per family: exact match (pass@1) on the held-out test outputs with its standard
error, training CPU seconds and test CPU seconds per task, for the hybrid on the random LM (TRM head,
LM answer), with `--lm-steps N` the trained LM alone, with test-time training, and the hybrid on it,
and the family's chance level (the parameter guessed at random, `unseen_tasks.chance`). CPU seconds
are this process's (`time.process_time`, torch on one thread); `train_cpu_s` also caps training's
wall clock, so a busy machine trains fewer steps, never more.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# experiments/ is not a package: its scripts import one another by module name from their own folder.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from unseen_tasks import CANVAS as TASK_SIDE  # noqa: E402
from unseen_tasks import FAMILIES, MethodBudget, MethodResult, chance, family_tasks, score  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
JOINT_CONFIG = ROOT / "experiments" / "configs" / "joint_tiny.yaml"
CANVAS = TASK_SIDE + 1  # a spare row and column, so an EOS edge marks every grid's size
ANSWER_TOKENS = TASK_SIDE * (TASK_SIDE + 1) + 1  # the largest answer's rows, newlines and EOS
QUICK_STEPS = 10


# --------------------------------------------------------------------------------------------------
# the hybrid


def joint_config(task_dir: Path, work_dir: Path, budget: MethodBudget, backbone: str | None = None):
    """joint_tiny.yaml trained on the tasks in `task_dir`, nothing held out inside the run; the
    backbone is joint_tiny's tiny-random unless `backbone` names another (a local directory)."""
    from hybrid_pipeline.config import load_config
    from hybrid_pipeline.joint import JointTrainConfig

    steps = QUICK_STEPS if budget.quick else budget.train_steps
    overrides = [f"data={task_dir}", "tasks=null", "eval_data=null", "eval_tasks=null", f"max_steps={steps}",
                 f"warmup_steps={min(20, steps // 5)}", f"time_limit_s={json.dumps(budget.train_cpu_s)}",
                 "num_augmentations=4", f"seed={budget.seed}", f"model.seed={budget.seed}", "log_with=[]",
                 f"log_every={max(1, steps // 10)}", f"checkpoint_every={steps}", f"out_dir={work_dir / 'run'}",
                 f"cache_dir={work_dir / 'cache'}", f"canvas={CANVAS}"]
    if budget.quick:
        overrides.append("batch_size=4")
    if backbone is not None:
        overrides.append(f"model.backbone.name_or_path={backbone}")
    return load_config(JointTrainConfig, JOINT_CONFIG, overrides)


def fit_hybrid(train_tasks: Sequence, budget: MethodBudget, work_dir: Path,
               backbone: str | None = None) -> tuple[Any, float, dict[str, Any]]:
    """(the trained HybridModel, training CPU seconds, the steps and last logged metrics)."""
    from hybrid_pipeline.joint import train_joint

    task_dir = work_dir / "train"
    task_dir.mkdir(parents=True, exist_ok=True)
    for task in train_tasks:
        (task_dir / f"{task.id}.json").write_text(json.dumps(task.to_json()))
    start = time.process_time()
    result = train_joint(joint_config(task_dir, work_dir, budget, backbone), progress=False)
    return result.model, time.process_time() - start, {"steps": result.steps, **result.last_log}


def predict_hybrid(model: Any, held_out: Sequence, seed: int) -> tuple[dict[str, dict[str, Any]], float]:
    """({"trm": {task id: grid or None}, "lm": {...}}, test CPU seconds per task); reads no test output."""
    from hybrid_pipeline.joint import predict_attempts

    blind = [t.without_solutions() for t in held_out]
    start = time.process_time()
    predicted = predict_attempts(model, blind, augmentations=1, seed=seed, max_new_tokens=ANSWER_TOKENS)
    seconds = (time.process_time() - start) / max(len(blind), 1)
    first = {source: {t.id: (predicted[source][t.id][0][0] if predicted[source][t.id][0] else None) for t in blind}
             for source in ("trm", "lm")}
    return first, seconds


def predict_hybrid_ttt(model: Any, held_out: Sequence, steps: int, *, seed: int = 0,
                       lr: float = 1e-3) -> tuple[dict[str, dict[str, Any]], float]:
    """`predict_hybrid` after `steps` training steps of the model's trained parts on each task's
    leave-one-out rows (its demonstrations only); the weights go back after every task."""
    import torch

    from hybrid_pipeline.arc.tasks import leave_one_out
    from hybrid_pipeline.arc.text import task_to_prompt

    saved = {k: v.detach().clone() for k, v in model.trainable_state_dict().items()}
    first: dict[str, dict[str, Any]] = {"trm": {}, "lm": {}}
    start = time.process_time()
    for task in held_out:
        blind = task.without_solutions()
        rows = leave_one_out(blind)
        if rows:
            batch = model.encode([task_to_prompt(r) for r in rows], [r.test[0].input for r in rows],
                                 test_outputs=[r.test[0].output for r in rows])
            optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=lr, weight_decay=0.0)
            generator = torch.Generator(device=model.backbone.device).manual_seed(seed)
            model.train()
            for _ in range(steps):
                loss = model(batch, generator=generator).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            model.eval()
        predictions, _ = predict_hybrid(model, [blind], seed)
        for source in first:
            first[source][blind.id] = predictions[source][blind.id]
        model.load_state_dict(saved, strict=False)  # the jointly trained weights for the next task
    return first, (time.process_time() - start) / max(len(held_out), 1)


def hybrid_method(train_tasks: list, held_out: list, budget: MethodBudget, *, backbone: str | None = None,
                  name: str = "hybrid (TRM head)") -> MethodResult:
    """Joint training on `train_tasks` (`budget.train_steps`, capped at `budget.train_cpu_s`), then
    the TRM head's answer to each held-out task, after `budget.test_steps` test-time steps on its
    demonstrations (0: none)."""
    with tempfile.TemporaryDirectory(prefix="unseen-hybrid-", dir=budget.work_dir) as tmp:
        model, train_cpu, last = fit_hybrid(train_tasks, budget, Path(tmp), backbone)
    if budget.test_steps:
        predictions, test_cpu = predict_hybrid_ttt(model, held_out, budget.test_steps, seed=budget.seed)
    else:
        predictions, test_cpu = predict_hybrid(model, held_out, budget.seed)
    return MethodResult(name, {}, train_cpu, test_cpu, _training_notes(last),
                        predictions=predictions["trm"])


def _training_notes(last: dict[str, Any]) -> str:
    return (f"{last['steps']} steps, last logged grid loss {last.get('grid_loss', float('nan')):.3f}, "
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
            text = model.generate_answers(task_to_prompt(blind), 1, temperature=0.0, max_new_tokens=ANSWER_TOKENS,
                                          seed=seed)[0]
        try:
            predictions[task.id] = parse_grid(text)
        except AnswerParseError:
            predictions[task.id] = None
    return predictions, (time.process_time() - start) / max(len(held_out), 1)


def lm_ttt_method(train_tasks: list, held_out: list, budget: MethodBudget) -> MethodResult:
    """The tiny LLaMA trained on `train_tasks` for `budget.train_steps` steps, answering each held-out
    task after `budget.test_steps` LoRA test-time training steps on its demonstrations."""
    steps = QUICK_STEPS if budget.quick else budget.train_steps
    with tempfile.TemporaryDirectory(prefix="unseen-lm-", dir=budget.work_dir) as tmp:
        directory, train_cpu, losses = pretrain_lm(train_tasks, steps, Path(tmp) / "lm", seed=budget.seed)
        predictions, test_cpu = predict_lm(str(directory), held_out, budget.test_steps, seed=budget.seed)
    return MethodResult(f"LM + TTT {budget.test_steps}", {}, train_cpu, test_cpu,
                        f"LM {steps} steps, answer loss {losses[0]:.2f} -> {np.mean(losses[-20:]):.2f}",
                        predictions=predictions)


# --------------------------------------------------------------------------------------------------
# the table


def format_table(results: Sequence[MethodResult], title: str) -> str:
    lines = [title, f"{'method':<38} {'exact (pass@1)':>22} {'train CPU s':>12} {'test CPU s/task':>16}  notes"]
    for r in results:
        solved, n = sum(r.correct.values()), len(r.correct)
        exact = f"{solved}/{n} = {100 * r.accuracy:.1f}% ± {100 * r.standard_error:.1f}"
        lines.append(f"{r.name:<38} {exact:>22} {r.train_cpu_s:>12.1f} {r.test_cpu_s_per_task:>16.3f}  {r.notes}")
    return "\n".join(lines)


def hybrid_rows(train: Sequence, blind: Sequence, budget: MethodBudget, label: str, backbone: str | None,
                ttt_steps: int) -> list[MethodResult]:
    """One joint training: the TRM head's and the LM answer's rows, and with `ttt_steps` the TRM
    head's after test-time training."""
    with tempfile.TemporaryDirectory(prefix="unseen-hybrid-", dir=budget.work_dir) as tmp:
        model, train_cpu, last = fit_hybrid(train, budget, Path(tmp), backbone)
    predictions, cpu = predict_hybrid(model, blind, budget.seed)
    rows = [MethodResult(f"hybrid, {label}, TRM head", {}, train_cpu, cpu, _training_notes(last),
                         predictions=predictions["trm"]),
            MethodResult(f"hybrid, {label}, LM answer", {}, train_cpu, cpu, "same model",
                         predictions=predictions["lm"])]
    if ttt_steps:
        predictions, cpu = predict_hybrid_ttt(model, blind, ttt_steps, seed=budget.seed)
        rows.append(MethodResult(f"hybrid, {label}, TTT {ttt_steps}, TRM head", {}, train_cpu, cpu,
                                 "same model, lr 1e-3", predictions=predictions["trm"]))
    return rows


def measure_family(family: str, args: argparse.Namespace) -> str:
    """Every row of one family's table, scored."""
    n_train, n_held = (8, 4) if args.quick else (args.train_tasks, args.held_out)
    train = family_tasks(family, "train", n_train, seed=args.seed)
    held_out = family_tasks(family, "heldout", n_held, seed=args.seed)
    blind = [t.without_solutions() for t in held_out]
    budget = MethodBudget(train_steps=args.steps, test_steps=0, train_cpu_s=args.cpu_seconds, seed=args.seed,
                          quick=args.quick)
    results = hybrid_rows(train, blind, budget, "random LM", None, args.hybrid_ttt_steps)
    if args.lm_steps:
        with tempfile.TemporaryDirectory(prefix="unseen-lm-") as tmp:
            lm_steps = QUICK_STEPS if args.quick else args.lm_steps
            directory, lm_cpu, losses = pretrain_lm(train, lm_steps, Path(tmp) / "lm", seed=args.seed)
            note = f"LM {lm_steps} steps, answer loss {losses[0]:.2f} -> {np.mean(losses[-20:]):.2f}"
            for steps in (0, args.ttt_steps):
                predictions, cpu = predict_lm(str(directory), blind, steps, seed=args.seed)
                results.append(MethodResult("trained LM" + (f" + TTT {steps}" if steps else " alone"), {}, lm_cpu,
                                            cpu, note, predictions=predictions))
            for row in hybrid_rows(train, blind, budget, "trained LM", str(directory), args.hybrid_ttt_steps):
                row.train_cpu_s += lm_cpu  # the LM's training is part of this method's
                results.append(row)
    results = [score(result, held_out) for result in results]  # score() returns the result with `correct`
    level = float(np.mean([chance(family, t) for t in held_out]))
    title = (f"{family}: {len(train)} training, {len(held_out)} held-out tasks (seed {args.seed}); chance "
             f"{100 * level:.1f}% (the family's parameter guessed at random)")
    return format_table(results, title)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="dihedral", help=f"comma-separated, of {', '.join(FAMILIES)}")
    parser.add_argument("--train-tasks", type=int, default=64)
    parser.add_argument("--held-out", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300, help="joint training steps (default 300)")
    parser.add_argument("--cpu-seconds", type=float, default=600.0, help="cap on each training (default 600)")
    parser.add_argument("--lm-steps", type=int, default=0, help="also train the tiny LM on the training tasks' "
                        "text for this many steps, and run the hybrid and the LM alone on it (default 0: no)")
    parser.add_argument("--ttt-steps", type=int, default=32, help="LoRA test-time training steps per held-out "
                        "task for the trained LM (default 32; lr 1e-3, rank 8)")
    parser.add_argument("--hybrid-ttt-steps", type=int, default=0, help="also answer with the random-LM hybrid "
                        "after this many test-time training steps per held-out task (default 0: no)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} steps on 8 + 4 tasks: a pipeline check")
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        print(f"error: unknown family {unknown[0] if unknown else '(none)'}; known: {', '.join(FAMILIES)}",
              file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    for family in families:
        print(measure_family(family, args), flush=True)
    print("frozen tiny LLaMA (width 64, 2 layers); joint_tiny hybrid without puzzle embedding on a "
          f"{CANVAS}x{CANVAS} canvas; ± one standard error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
