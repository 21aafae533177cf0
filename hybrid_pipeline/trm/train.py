"""Training the TRM on ARC tasks: the paper's recipe, driven through `accelerate`.

Reads top to bottom: config, data, model and optimisers, the loop, checkpoints.

Data. Every pair of the training tasks, plus the demonstration pairs of the evaluation tasks (the
paper learns their puzzle embeddings this way; their test inputs are never trained on), under
`num_augmentations` augmentations each, translated at random inside the canvas. Evaluation tasks
whose test inputs appear in the training data are refused (see `find_leakage`) unless `leakage`
says to exclude or allow them: ARC-AGI-1 itself has one (070dd51e's test pair is a pair of
40853293), and ARC-AGI-2's training split holds 376 ARC-AGI-1 evaluation tasks.

Loop. One optimiser step per supervision step: the carry holds each sequence's latents between
steps, and a sequence that halts takes a fresh row from the next batch (ACT, as the paper).
Loss = sum over sequences / global batch. Adam-atan2 (or AdamW) on the network with linear warmup
then constant lr (the paper; `lr_min_ratio` < 1 decays it along a cosine to that fraction at
`max_steps`), sign-SGD on the puzzle-embedding rows of the batch, EMA of the network weights.

Checkpoints. `out_dir/checkpoints/step-NNNNNNN/` holds `model.safetensors` + `config.json` (EMA
weights when EMA is on: what you evaluate), `puzzles.json` (the augmentation plan: puzzle id ->
task/augmentation) and `training_state.pt` (raw weights, optimiser, EMA, carry, RNG). Each is
written under a temporary name and renamed, and `latest.json` moves only after, so a kill never
leaves a partial checkpoint where `--resume` would look. The data order is a function of the step,
so a resumed run sees exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybrid_pipeline.arc.datasets import AugmentationPlan, TRMDataConfig, build_trm_dataset
from hybrid_pipeline.arc.errors import ARCDataError, Problem
from hybrid_pipeline.arc.files import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from hybrid_pipeline.arc.tasks import (LEAKAGE_POLICIES, Task, apply_leakage_policy, fitting, load_tasks,
                                      merge_tasks)
from hybrid_pipeline.config import ConfigError, changed_settings
from hybrid_pipeline.trm.checkpoint import LATEST_NAME, CheckpointError, save_export, write_dir_atomically
from hybrid_pipeline.trm.checkpoint import latest_checkpoint as checkpoint_pointer
from hybrid_pipeline.trm.config import TRMConfig
from hybrid_pipeline.trm.losses import (SUPERVISION_PRESETS, StepLoss, SupervisionWeighting, act_loss, loss_by_step,
                                        summarize_metrics)
from hybrid_pipeline.trm.model import TRM, TRMCarry
from hybrid_pipeline.trm.optim import EMA, AdamAtan2, SparseSignSGD

STATE_NAME = "training_state.pt"


@dataclass
class TRMTrainConfig:
    """Everything a TRM training run needs. Defaults are the paper's ARC-AGI-1 recipe (4 GPUs, days);
    `experiments/configs/trm_tiny.yaml` holds the few values that make it a minutes-long CPU run."""

    model: TRMConfig = field(default_factory=TRMConfig)
    data: str | None = "arc-agi-1:training"  # every pair of these tasks trains (None: none)
    eval_data: str | None = "arc-agi-1:evaluation"  # demonstrations train, test inputs evaluate
    tasks: tuple[str, ...] | None = None  # ids / globs selecting from `data`
    limit: int | None = None
    eval_tasks: tuple[str, ...] | None = None
    eval_limit: int | None = None
    num_augmentations: int = 1000  # per task, identity included
    translate: bool = True
    canvas: int = 30  # grid canvas side; model.seq_len is set to canvas**2
    batch_size: int = 768  # global, over all processes
    max_steps: int = 100_000
    time_limit_s: float | None = None  # stop (checkpoint, evaluate, export) after this wall-clock time;
    # per invocation: a resumed run starts its clock again
    lr: float = 1e-4
    lr_warmup_steps: int = 2000
    lr_min_ratio: float = 1.0  # lr at max_steps / lr, reached along a cosine after warmup (1.0: constant, the paper)
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    puzzle_emb_lr: float = 1e-2
    puzzle_emb_weight_decay: float = 0.1
    optimizer: str = "adam_atan2"  # or "adamw"
    grad_clip: float | None = None  # the paper does not clip
    ema_decay: float | None = 0.999
    loss_type: str = "stablemax"
    halt_loss_weight: float = 0.5
    supervision: str = "uniform"  # deep-supervision weighting preset
    eval_every: int = 0  # steps; 0 evaluates only at the end
    eval_augmentations: int | None = None  # views voted per test input (None: all in the plan)
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    out_dir: str = "runs/trm"
    cache_dir: str | None = ".cache/datasets"
    seed: int = 0
    leakage: str = "refuse"  # evaluation tasks found in the training data: refuse | exclude | allow
    torch_compile: bool = False  # torch.compile the network and the loss (see `compile_for_training`)

    def __post_init__(self) -> None:
        for key in ("num_augmentations", "canvas", "batch_size", "max_steps", "checkpoint_every",
                    "keep_checkpoints", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not 1 <= self.canvas <= 30:
            raise ValueError(f"canvas must be 1..30, got {self.canvas}")
        if self.optimizer not in ("adam_atan2", "adamw"):
            raise ValueError(f"optimizer must be adam_atan2 or adamw, got {self.optimizer!r}")
        if self.supervision not in SUPERVISION_PRESETS:
            raise ValueError(f"supervision must be one of {', '.join(SUPERVISION_PRESETS)}, got {self.supervision!r}")
        if self.leakage not in LEAKAGE_POLICIES:
            raise ValueError(f"leakage must be refuse, exclude or allow, got {self.leakage!r}")
        if not 0 <= self.lr_min_ratio <= 1:
            raise ValueError(f"lr_min_ratio must be in [0, 1], got {self.lr_min_ratio}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1) or null, got {self.ema_decay}")


@dataclass
class TRMData:
    inputs: np.ndarray  # (N, L) uint8
    labels: np.ndarray  # (N, L) uint8
    puzzle_ids: np.ndarray  # (N,) int
    plan: AugmentationPlan
    eval_tasks: list[Task]

    def batch_indices(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        """Rows of global batch `step`: consecutive slices of per-epoch permutations (a pure function
        of step, so resuming needs no saved data-loader state)."""
        n = len(self.inputs)
        positions = np.arange(step * batch_size, (step + 1) * batch_size)
        epochs, offsets = np.divmod(positions, n)
        out = np.empty(batch_size, dtype=np.int64)
        for epoch in np.unique(epochs):
            perm = np.random.default_rng([seed, int(epoch)]).permutation(n)
            sel = epochs == epoch
            out[sel] = perm[offsets[sel]]
        return out


def load_training_data(config: TRMTrainConfig) -> TRMData:
    """Tasks -> augmented rows (cached), after refusing train/eval leakage."""
    train_tasks: list[Task] = []
    if config.data:
        train_tasks = load_tasks(config.data, ids=config.tasks, limit=config.limit,
                                 require_solutions=True).raise_if_problems().tasks
    eval_tasks: list[Task] = []
    if config.eval_data:
        eval_tasks = load_tasks(config.eval_data, ids=config.eval_tasks,
                                limit=config.eval_limit).raise_if_problems().tasks
        eval_tasks = apply_leakage_policy(eval_tasks, train_tasks, config.leakage,
                                          held_out_label=config.eval_data, train_label=str(config.data))
    train_tasks, eval_tasks = fitting(train_tasks, config.canvas), fitting(eval_tasks, config.canvas)
    if not train_tasks and not eval_tasks:
        raise ARCDataError(Problem(f"no training data: data={config.data!r}, eval_data={config.eval_data!r} "
                                   f"give no task that fits the {config.canvas}x{config.canvas} canvas"))
    # The plan gives each id its puzzle embeddings: an evaluation task under a training task's id
    # must be that task (its pairs regrouped at most), or it would be scored with another's embedding.
    train_ids = {t.id for t in train_tasks}
    eval_only = [t for t in merge_tasks([(str(config.data), train_tasks), (str(config.eval_data), eval_tasks)])
                 if t.id not in train_ids]
    plan = AugmentationPlan.sample(train_tasks + eval_only, config.num_augmentations, seed=config.seed)
    cache = config.cache_dir
    # Test pairs of training tasks train too; only demonstrations of evaluation tasks do.
    sources = [(train_tasks, ("train", "test")), (eval_only, ("train",))]
    parts = [build_trm_dataset(tasks, TRMDataConfig(splits=splits, translate=config.translate,
                                                    canvas=config.canvas, seed=config.seed),
                               plan=plan, cache_dir=cache)
             for tasks, splits in sources if tasks]
    columns = [p.with_format("numpy")[:] for p in parts]
    return TRMData(inputs=np.concatenate([c["inputs"] for c in columns]),
                   labels=np.concatenate([c["labels"] for c in columns]),
                   puzzle_ids=np.concatenate([c["puzzle_id"] for c in columns]),
                   plan=plan, eval_tasks=eval_tasks)


# --------------------------------------------------------------------------------------------------
# checkpoints


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The last checkpoint of a TRM run (see `checkpoint.latest_checkpoint`)."""
    return checkpoint_pointer(out_dir, STATE_NAME)


# --------------------------------------------------------------------------------------------------
# the run


@dataclass
class TrainResult:
    final_dir: Path
    steps: int
    last_log: dict[str, Any]
    eval: dict[str, Any] | None
    is_main_process: bool = True  # under `accelerate launch`, only one process should report


def train_trm(config: TRMTrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
              stop_after: int | None = None) -> TrainResult:
    """Train (or resume) a TRM; returns where the final export is. `overwrite` first removes a
    training run in the out dir (its checkpoints, log, settings, export and summary).

    `stop_after` ends the process's work after that many steps of this call without a final export
    (tests use it to simulate a kill between checkpoints).
    """
    from accelerate import Accelerator
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    accelerator = Accelerator()
    world, rank = accelerator.num_processes, accelerator.process_index
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} must divide evenly over {world} processes")
    local_batch = config.batch_size // world
    out_dir = Path(config.out_dir)
    if check_out_dir(out_dir, config, resume=resume, overwrite=overwrite):  # before any file is touched
        if accelerator.is_main_process:
            remove_run(out_dir)
        accelerator.wait_for_everyone()
    torch.manual_seed(config.seed)

    data = load_training_data(config)
    model_config = dataclasses.replace(config.model, seq_len=config.canvas ** 2,
                                       num_puzzle_identifiers=data.plan.num_puzzles)
    model = TRM(model_config).to(accelerator.device)
    dense = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam_atan2":
        optimizer = AdamAtan2(dense, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(dense, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    sparse = SparseSignSGD(model.puzzle_emb, lr=config.puzzle_emb_lr, weight_decay=config.puzzle_emb_weight_decay) \
        if model.puzzle_emb is not None else None
    ema = EMA(model, config.ema_decay) if config.ema_decay else None
    weighting = SupervisionWeighting.preset(config.supervision)
    generator = torch.Generator(device=accelerator.device).manual_seed(config.seed * 1000 + rank)

    start_step, carry, prev_seq_loss = 0, None, None
    checkpoint = latest_checkpoint(out_dir) if resume else None
    if checkpoint is not None:
        state = torch.load(checkpoint / STATE_NAME, map_location=accelerator.device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start_step = state["step"]
        rank_state = state["ranks"][rank]
        generator.set_state(rank_state["generator"])
        if rank_state["carry"] is not None:
            carry = TRMCarry(**_to_device(rank_state["carry"], accelerator.device))
        if rank_state["prev_seq_loss"] is not None:
            prev_seq_loss = rank_state["prev_seq_loss"].to(accelerator.device)
    loss_fn = compile_for_training(model) if config.torch_compile else act_loss
    ddp_model, optimizer = accelerator.prepare(model, optimizer)

    log_path = out_dir / "train_log.jsonl"
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "train_config.json", config_to_json(config), indent=2)
        if log_path.exists():  # steps after the checkpoint are about to be trained again
            atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in read_jsonl(log_path)
                                                if r.get("step", 0) <= start_step))
        print(f"TRM: {sum(p.numel() for p in dense):,} trainable parameters, {data.plan.num_puzzles:,} puzzle "
              f"embeddings, {len(data.inputs):,} training rows, {len(data.eval_tasks)} evaluation tasks"
              + (f"; resuming at step {start_step} from {checkpoint}" if checkpoint else "")
              + (f"; --resume found no checkpoint in {out_dir}, starting at step 0"
                 if resume and not checkpoint else ""))

    def to_device(rows: np.ndarray) -> dict[str, torch.Tensor]:
        return {"inputs": torch.from_numpy(data.inputs[rows].astype(np.int64)).to(accelerator.device),
                "labels": torch.from_numpy(data.labels[rows].astype(np.int64)).to(accelerator.device),
                "puzzle_identifiers": torch.from_numpy(data.puzzle_ids[rows].astype(np.int64)).to(accelerator.device)}

    def save_checkpoint(step: int) -> None:
        rank_state = {  # every process's carry and RNG, so that a resume is exact
            "generator": generator.get_state().cpu(),
            "carry": None if carry is None else _to_cpu(dataclasses.asdict(carry)),
            "prev_seq_loss": None if prev_seq_loss is None else prev_seq_loss.cpu(),
        }
        ranks = gather_object([rank_state]) if world > 1 else [rank_state]
        if not accelerator.is_main_process:
            return
        name = f"step-{step:07d}"

        def write(directory: Path) -> None:
            save_export(model, data.plan, directory, ema.shadow if ema is not None else None)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "ema": ema.state_dict() if ema is not None else None, "step": step, "ranks": ranks},
                       directory / STATE_NAME)

        checkpoints = out_dir / "checkpoints"
        write_dir_atomically(checkpoints / name, write)
        atomic_write_json(checkpoints / LATEST_NAME, {"name": name, "step": step})
        for old in sorted(checkpoints.glob("step-*"))[:-config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def evaluate_now() -> dict[str, Any] | None:
        if not data.eval_tasks or not accelerator.is_main_process:
            return None
        from hybrid_pipeline.trm.evaluate import score_votes, vote_predictions

        eval_model = ema.averaged(model) if ema is not None else model
        box = vote_predictions(eval_model, data.eval_tasks, data.plan, canvas=config.canvas,
                               batch_size=local_batch, max_augmentations=config.eval_augmentations)
        solved = [t for t in data.eval_tasks if t.has_solutions]
        return score_votes(box, solved).to_dict() if solved else None

    sums: dict[str, Any] = {}
    step_loss = torch.zeros(model_config.halt_max_steps, dtype=torch.float64)
    step_count = torch.zeros(model_config.halt_max_steps, dtype=torch.long)
    last_log: dict[str, Any] = {}
    eval_result = None
    started = time.perf_counter()
    bar = tqdm(total=config.max_steps, initial=start_step, desc="train TRM", disable=not (progress and accelerator.is_main_process))
    step = start_step
    max_steps = config.max_steps
    while step < max_steps:
        rows = data.batch_indices(step, config.batch_size, config.seed)[rank * local_batch:(rank + 1) * local_batch]
        batch = to_device(rows)
        if carry is None:
            carry = model.initial_carry(batch)
        factor = lr_factor(step, config.lr_warmup_steps, config.max_steps, config.lr_min_ratio)
        for opt, base in ((optimizer, config.lr), (sparse, config.puzzle_emb_lr)):
            for group in (opt.param_groups if opt is not None else []):
                group["lr"] = base * factor

        ddp_model.train()
        carry, outputs = ddp_model(carry, batch, generator=generator)
        result = loss_fn(outputs, carry.current_data["labels"], loss_type=config.loss_type,
                         halt_loss_weight=config.halt_loss_weight, weighting=weighting,
                         max_steps=model_config.halt_max_steps, prev_seq_loss=prev_seq_loss)
        accelerator.backward(result.loss / config.batch_size)
        if config.grad_clip:
            accelerator.clip_grad_norm_(dense, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if sparse is not None:
            if world > 1:
                _gather_puzzle_rows(accelerator, model.puzzle_emb)
            sparse.step()
            sparse.zero_grad()
        if ema is not None:
            ema.update(model)
        prev_seq_loss = result.seq_loss

        for key, value in result.metrics.items():
            sums[key] = sums.get(key, 0.0) + float(value)
        sums["seq_loss"] = sums.get("seq_loss", 0.0) + float(result.seq_loss.sum())
        sums["sequences"] = sums.get("sequences", 0) + len(result.seq_loss)
        done = outputs["halted"]
        total, count = loss_by_step(result.seq_loss[done], outputs["steps"][done], model_config.halt_max_steps)
        step_loss += total.cpu()
        step_count += count.cpu()
        step += 1
        bar.update(1)

        if config.time_limit_s is not None:
            # Every process must agree to stop, or the others would wait for it forever.
            late = torch.tensor([float(time.perf_counter() - started >= config.time_limit_s)],
                                device=accelerator.device)
            if float(accelerator.reduce(late, reduction="max")) > 0:
                max_steps = step  # out of time: finish like a completed run
        if step % config.log_every == 0 or step == max_steps:
            summary = summarize_metrics(sums) if sums.get("count") else {}
            per_step = [round(float(t / c), 5) if c else None for t, c in zip(step_loss, step_count)]
            last_log = {"step": step, "lr": config.lr * factor, "loss": sums["seq_loss"] / sums["sequences"],
                        **summary, "loss_by_supervision_step": per_step,
                        "elapsed_s": round(time.perf_counter() - started, 2)}
            if accelerator.is_main_process:
                append_jsonl(log_path, last_log)
                bar.set_postfix(exact=f"{summary.get('exact_accuracy', 0):.3f}", steps=f"{summary.get('mean_steps', 0):.1f}")
            sums = {}
            step_loss.zero_()
            step_count.zero_()
        if config.eval_every and step % config.eval_every == 0 and step < max_steps:
            eval_result = evaluate_now()
            if eval_result is not None:
                append_jsonl(log_path, {"step": step, "eval": {k: v for k, v in eval_result.items() if k != "ranks"}})
        if step % config.checkpoint_every == 0 or step == max_steps:
            save_checkpoint(step)
        if stop_after is not None and step - start_step >= stop_after:
            bar.close()
            accelerator.end_training()
            return TrainResult(out_dir / "checkpoints", step, last_log, None, accelerator.is_main_process)
    bar.close()

    eval_result = evaluate_now()
    final_dir = out_dir / "final"
    if accelerator.is_main_process:
        write_dir_atomically(final_dir, lambda d: save_export(model, data.plan, d, ema.shadow if ema is not None else None))
        summary = {"steps": step, "final_dir": str(final_dir), "last_log": last_log,
                   "eval": None if eval_result is None else {k: v for k, v in eval_result.items() if k != "ranks"}}
        atomic_write_json(out_dir / "summary.json", summary, indent=2)
    accelerator.wait_for_everyone()
    # Tear the process group down before the interpreter exits: a gloo group left to die with the
    # process can abort a rank at exit ("terminate called without an active exception").
    accelerator.end_training()
    return TrainResult(final_dir, step, last_log, eval_result, accelerator.is_main_process)


# Settings a resume may change: they decide what is logged, evaluated and kept, not what is computed.
RESUME_FREE_KEYS = ("time_limit_s", "log_every", "eval_every", "eval_augmentations", "checkpoint_every",
                    "keep_checkpoints", "cache_dir", "out_dir")


RUN_FILES = ("checkpoints", "train_log.jsonl", "train_config.json", "final", "summary.json")


def check_out_dir(out_dir: Path, config: TRMTrainConfig, *, resume: bool, overwrite: bool = False) -> bool:
    """Refuse a fresh run into a directory that holds a run (unless `overwrite`: then True, the
    run there is to be removed), and a resume with settings that would make it another run
    (max_steps may change where the lr schedule does not depend on it)."""
    saved_path = out_dir / "train_config.json"
    checkpoint = latest_checkpoint(out_dir)
    if resume and overwrite:
        raise CheckpointError("--resume continues the run in out_dir and --overwrite replaces it: pass one of them")
    if not resume:
        holds_run = checkpoint is not None or (out_dir / "train_log.jsonl").exists()
        if holds_run and not overwrite:
            raise CheckpointError(f"{out_dir} holds a training run; pass --resume to continue it, --overwrite to "
                                  "replace it, or choose another out_dir")
        return holds_run
    if checkpoint is None or not saved_path.exists():
        return False
    try:
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{saved_path}: cannot read the settings of the run to resume ({e})") from None
    free = RESUME_FREE_KEYS + (("max_steps",) if config.lr_min_ratio == 1.0 else ())
    changed = changed_settings(saved, json.loads(json.dumps(config_to_json(config))), free)
    if changed:
        raise CheckpointError(f"{out_dir}: cannot resume with other settings than the run there "
                              f"({'; '.join(changed)}); resume with the same values or use a new out_dir")
    return False


def remove_run(out_dir: Path) -> None:
    """Remove a training run's files from `out_dir` (what `RUN_FILES` names; nothing else there)."""
    import shutil

    for name in RUN_FILES:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def compile_for_training(model: TRM) -> Callable[..., StepLoss]:
    """Compile `model`'s network(s) with torch.compile, in place, and return `act_loss` compiled.

    Only the network is compiled (`nn.Module.compile`): it runs every latent update and holds all
    the matmuls, while the ACT step around it branches on data. In place, parameter names do not
    change, so checkpoints, EMA and DDP see the usual module, and its checkpoints load uncompiled.
    A step matches eager mode to float rounding (over thousands of steps the two runs part, as any
    change of rounding makes them). The first step pays the compilation (seconds on CPU), and each
    new batch shape compiles again. On CPU, inductor needs a C++ compiler.
    """
    if next(model.parameters()).device.type == "cpu":
        _require_cpp_compiler()
    for network in (model.net, model.h_net):
        if network is not None:
            network.compile()
    return torch.compile(act_loss)


def _require_cpp_compiler() -> None:
    """Fail before training, naming the key, where inductor would fail at the first step on CPU."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # moved in another torch: inductor will say so at the first step
        return
    try:
        get_cpp_compiler()
    except Exception as e:  # noqa: BLE001 - inductor's own error type has moved between versions
        raise ConfigError(f"torch_compile=true on CPU needs a C++ compiler for torch.compile "
                          f"({type(e).__name__}: {e}); install one (g++) or set torch_compile=false") from None


def lr_factor(step: int, warmup_steps: int, max_steps: int, min_ratio: float = 1.0) -> float:
    """The lr multiplier of optimiser step `step` (0-based): linear warmup over `warmup_steps`, then a
    half cosine from 1 down to `min_ratio` at `max_steps` (constant when `min_ratio` is 1).

    Both optimisers follow it. A run that `time_limit_s` ends early stops partway down the cosine.
    Letting the cosine follow the time limit instead was tried and scored lower on the toy check
    (0.860 and 0.864 at 7,499 and 8,384 steps, against 0.944 and 0.964 at 8,160 and 8,790): it
    decays before the slow families are learnt.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _gather_puzzle_rows(accelerator: Any, embedding: Any) -> None:
    """Share every process's touched puzzle rows and their gradients, so each applies the same update.

    The puzzle table is a buffer, outside DDP's gradient all-reduce; without this, each process would
    update its own rows only and DDP's buffer broadcast would then keep rank 0's table.
    """
    if embedding.rows is None or embedding.rows.grad is None:
        return
    ids = accelerator.gather(embedding.ids)
    grads = accelerator.gather(embedding.rows.grad)
    rows = grads.new_zeros(grads.shape).requires_grad_(True)
    rows.grad = grads
    embedding.rows, embedding.ids = rows, ids


def config_to_json(config: TRMTrainConfig) -> dict[str, Any]:
    from hybrid_pipeline.config import config_to_dict

    return config_to_dict(config)


def _to_cpu(tree: Any) -> Any:
    if torch.is_tensor(tree):
        return tree.cpu()
    return {k: _to_cpu(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


def _to_device(tree: Any, device: torch.device) -> Any:
    if torch.is_tensor(tree):
        return tree.to(device)
    return {k: _to_device(v, device) for k, v in tree.items()} if isinstance(tree, dict) else tree
