"""Training the TRM on ARC tasks: the paper's recipe, driven through `accelerate`.

Reads top to bottom: config, data, then `TRMTrainer`: model and optimisers, one step, checkpoint, evaluation.

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
task/augmentation) and `training_state.pt` (raw weights, optimiser, EMA, and each process's carry
and RNG). The data order is a function of the step, so a resumed run sees exactly the batches the
uninterrupted run would have. The out dir, the cadence, atomic checkpoints, the time limit,
signals and the log are the one training loop's (`hybrid_pipeline.training`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybrid_pipeline import training
from hybrid_pipeline.arc.datasets import AugmentationPlan, TRMDataConfig, build_trm_dataset
from hybrid_pipeline.arc.errors import ARCDataError, Problem
from hybrid_pipeline.arc.tasks import (LEAKAGE_POLICIES, Task, apply_leakage_policy, fitting, load_tasks,
                                      merge_tasks)
from hybrid_pipeline.arc.wording import plural
from hybrid_pipeline.config import ConfigError
from hybrid_pipeline.training import TrainResult, batch_rows, process_share, run_training
from hybrid_pipeline.trm.checkpoint import save_export, write_dir_atomically
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
        """Rows of global batch `step` (`training.batch_rows`: a function of the step alone)."""
        return batch_rows(step, batch_size, len(self.inputs), seed)


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
# the run

# Settings a resume may change (besides `training.RESUME_FREE_KEYS`: the time limit, the cadence of
# logs, evaluations and checkpoints, out_dir and cache_dir): the views an evaluation votes over, and
# max_steps where the lr does not follow it (`lr_min_ratio` 1.0, the paper's constant lr).
RESUME_FREE_KEYS = training.RESUME_FREE_KEYS + ("eval_augmentations",)


def resume_free_keys(config: TRMTrainConfig) -> tuple[str, ...]:
    """The settings a resume of a run with `config` may change (see `RESUME_FREE_KEYS`)."""
    return RESUME_FREE_KEYS + (("max_steps",) if config.lr_min_ratio == 1.0 else ())


def train_trm(config: TRMTrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
              stop_after: int | None = None) -> TrainResult:
    """Train (or resume) a TRM on the one training loop (`hybrid_pipeline.training`); returns where
    the final export is.

    A fresh run into an out dir that holds a training run is refused unless `overwrite`, which
    removes that run first (its checkpoints, log, settings, export and summary). `resume` continues
    from the last checkpoint and refuses any other setting than the run's, naming each, before a
    file is touched; it may change only `time_limit_s`, `log_every`, `eval_every`,
    `eval_augmentations`, `checkpoint_every`, `keep_checkpoints`, `out_dir`, `cache_dir`, and
    `max_steps` when `lr_min_ratio` is 1.0. With no checkpoint there, `resume` starts a fresh run and
    says so. SIGINT and SIGTERM write a checkpoint of the step in progress, then raise
    KeyboardInterrupt / `runs.Terminated`. `stop_after` ends the call after that many steps without
    the final export (tests use it to simulate a kill between checkpoints).
    """
    return run_training(TRMTrainer(config), config, free=resume_free_keys(config), resume=resume,
                        overwrite=overwrite, progress=progress, stop_after=stop_after)


class TRMTrainer:
    """The TRM's part of a training run (`training.Trainer`): ACT steps with the carry between
    them, Adam-atan2 (or AdamW) and sign-SGD on the puzzle rows, EMA, voting evaluation."""

    name, state_name, run_files = "trm", STATE_NAME, ()

    def __init__(self, config: TRMTrainConfig) -> None:
        self.config = config
        self.model: TRM | None = None

    def accelerator_kwargs(self) -> dict[str, Any]:
        return {}

    def prepare(self, accelerator: Any, checkpoint: Path | None, say: Callable[[str], None]) -> None:
        config = self.config
        self.accelerator = accelerator
        torch.manual_seed(config.seed)
        self.data = load_training_data(config)
        self.model_config = dataclasses.replace(config.model, seq_len=config.canvas ** 2,
                                                num_puzzle_identifiers=self.data.plan.num_puzzles)
        self.model = model = TRM(self.model_config).to(accelerator.device)
        self.dense = [p for p in model.parameters() if p.requires_grad]
        optimizer_class = AdamAtan2 if config.optimizer == "adam_atan2" else torch.optim.AdamW
        optimizer = optimizer_class(self.dense, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
        self.sparse = SparseSignSGD(model.puzzle_emb, lr=config.puzzle_emb_lr,
                                    weight_decay=config.puzzle_emb_weight_decay) if model.puzzle_emb is not None else None
        self.ema = EMA(model, config.ema_decay) if config.ema_decay else None
        self.weighting = SupervisionWeighting.preset(config.supervision)
        self.generator = torch.Generator(device=accelerator.device).manual_seed(
            config.seed * 1000 + accelerator.process_index)
        self.carry: TRMCarry | None = None
        self.prev_seq_loss: torch.Tensor | None = None
        if checkpoint is not None:
            self.load(checkpoint, optimizer)
        self.loss_fn = compile_for_training(model) if config.torch_compile else act_loss
        self.ddp_model, self.optimizer = accelerator.prepare(model, optimizer)
        self.clear_metrics()
        say(f"TRM: {sum(p.numel() for p in self.dense):,} trainable parameters, {self.data.plan.num_puzzles:,} "
            f"puzzle embeddings, {plural(len(self.data.inputs), 'training row', thousands=True)}, "
            f"{plural(len(self.data.eval_tasks), 'evaluation task')}")

    def load(self, checkpoint: Path, optimizer: torch.optim.Optimizer) -> None:
        device = self.accelerator.device
        # on the CPU first: a data-parallel CPU process's device is "cpu:0", which torch.load cannot map to
        state = torch.load(checkpoint / STATE_NAME, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(_to_device(state["ema"], device))
        rank_state = state["ranks"][self.accelerator.process_index]
        self.generator.set_state(rank_state["generator"])
        if rank_state["carry"] is not None:
            self.carry = TRMCarry(**_to_device(rank_state["carry"], device))
        if rank_state["prev_seq_loss"] is not None:
            self.prev_seq_loss = rank_state["prev_seq_loss"].to(device)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """This process's rows of global batch `step`, on its device."""
        data, device = self.data, self.accelerator.device
        rows = process_share(data.batch_indices(step, self.config.batch_size, self.config.seed), self.accelerator)
        return {"inputs": torch.from_numpy(data.inputs[rows].astype(np.int64)).to(device),
                "labels": torch.from_numpy(data.labels[rows].astype(np.int64)).to(device),
                "puzzle_identifiers": torch.from_numpy(data.puzzle_ids[rows].astype(np.int64)).to(device)}

    def train_step(self, step: int) -> None:
        config, model = self.config, self.model
        batch = self.batch(step)
        if self.carry is None:
            self.carry = model.initial_carry(batch)
        factor = lr_factor(step, config.lr_warmup_steps, config.max_steps, config.lr_min_ratio)
        self.lr = config.lr * factor
        for opt, base in ((self.optimizer, config.lr), (self.sparse, config.puzzle_emb_lr)):
            for group in (opt.param_groups if opt is not None else []):
                group["lr"] = base * factor

        self.ddp_model.train()
        self.carry, outputs = self.ddp_model(self.carry, batch, generator=self.generator)
        result = self.loss_fn(outputs, self.carry.current_data["labels"], loss_type=config.loss_type,
                              halt_loss_weight=config.halt_loss_weight, weighting=self.weighting,
                              max_steps=self.model_config.halt_max_steps, prev_seq_loss=self.prev_seq_loss)
        self.accelerator.backward(result.loss / config.batch_size)
        if config.grad_clip:
            self.accelerator.clip_grad_norm_(self.dense, config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.sparse is not None:
            if self.accelerator.num_processes > 1:
                _gather_puzzle_rows(self.accelerator, model.puzzle_emb)
            self.sparse.step()
            self.sparse.zero_grad()
        if self.ema is not None:
            self.ema.update(model)
        self.prev_seq_loss = result.seq_loss
        self.add_metrics(result, outputs)

    def add_metrics(self, result: StepLoss, outputs: dict[str, torch.Tensor]) -> None:
        sums = self.sums
        for key, value in result.metrics.items():
            sums[key] = sums.get(key, 0.0) + float(value)
        sums["seq_loss"] = sums.get("seq_loss", 0.0) + float(result.seq_loss.sum())
        sums["sequences"] = sums.get("sequences", 0) + len(result.seq_loss)
        done = outputs["halted"]
        total, count = loss_by_step(result.seq_loss[done], outputs["steps"][done], self.model_config.halt_max_steps)
        self.step_loss += total.cpu()
        self.step_count += count.cpu()

    def clear_metrics(self) -> None:
        self.sums: dict[str, Any] = {}
        self.step_loss = torch.zeros(self.model_config.halt_max_steps, dtype=torch.float64)
        self.step_count = torch.zeros(self.model_config.halt_max_steps, dtype=torch.long)

    def metrics(self) -> dict[str, Any]:
        sums = self.sums
        summary = summarize_metrics(sums) if sums.get("count") else {}
        per_step = [round(float(t / c), 5) if c else None for t, c in zip(self.step_loss, self.step_count)]
        line = {"lr": self.lr, "loss": sums["seq_loss"] / sums["sequences"], **summary,
                "loss_by_supervision_step": per_step}
        self.clear_metrics()
        return line

    def save(self, directory: Path, step: int) -> None:
        from accelerate.utils import gather_object

        rank_state = {  # every process's carry and RNG, so that a resume is exact
            "generator": self.generator.get_state().cpu(),
            "carry": None if self.carry is None else _to_cpu(dataclasses.asdict(self.carry)),
            "prev_seq_loss": None if self.prev_seq_loss is None else self.prev_seq_loss.cpu(),
        }
        ranks = gather_object([rank_state]) if self.accelerator.num_processes > 1 else [rank_state]
        if not self.accelerator.is_main_process:
            return
        self.export_to(directory)
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "ema": self.ema.state_dict() if self.ema is not None else None, "step": step, "ranks": ranks},
                   directory / STATE_NAME)

    def export_to(self, directory: Path) -> None:
        save_export(self.model, self.data.plan, directory, self.ema.shadow if self.ema is not None else None)

    def evaluate(self, final: bool) -> dict[str, Any] | None:
        if not self.data.eval_tasks or not self.accelerator.is_main_process:
            return None
        from hybrid_pipeline.trm.evaluate import score_votes, vote_predictions

        eval_model = self.ema.averaged(self.model) if self.ema is not None else self.model
        box = vote_predictions(eval_model, self.data.eval_tasks, self.data.plan, canvas=self.config.canvas,
                               batch_size=self.config.batch_size // self.accelerator.num_processes,
                               max_augmentations=self.config.eval_augmentations)
        solved = [t for t in self.data.eval_tasks if t.has_solutions]
        return score_votes(box, solved).to_dict() if solved else None

    def logged_eval(self, result: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in result.items() if k != "ranks"}

    def export(self, directory: Path) -> None:
        if self.accelerator.is_main_process:
            write_dir_atomically(directory, self.export_to)

    def summary(self, eval_result: dict[str, Any] | None) -> dict[str, Any]:
        return {"eval": None if eval_result is None else self.logged_eval(eval_result)}


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
