"""Joint training of the hybrid (frozen LM -> adapters -> TRM -> refiner -> LM loss) with `accelerate`.

Reads top to bottom: config, data (with the optional prompt-state cache), then `JointTrainer`: model,
optimiser and schedule, one step, checkpoint, evaluation; then the evaluation functions.

    hybrid-arc joint train --config experiments/configs/joint_tiny.yaml     (or experiments/run_joint_training.py)
    accelerate launch -m hybrid_pipeline.cli joint train --config ...        (DDP, mixed precision, FSDP)
    ACCELERATE_USE_CPU=1 torchrun --standalone --nproc_per_node 2 -m hybrid_pipeline.cli joint train ...

Data. Every task of `data` (minus the held-out ones) trains, under `num_augmentations`
augmentations (identity first): each test pair as (prompt with every demonstration + test input,
test output), and with `leave_one_out` each demonstration pair k as the "test" with the other
demonstrations in the prompt. ARC tasks have 2-5 demonstrations and 1-2 test inputs, so leave-one-out
gives 3-5x the rows of test pairs alone, which is what makes a handful of tasks enough to train on.
The rows are the data layer's text dataset (`build_text_dataset`, cached by content hash); the TRM's
grids are read back from each row's own text with the data layer's parser, so the TRM and the LM see
the same grids by construction. Grids sit at the top left of a `canvas` x `canvas` TRM canvas (no
random translation: `HybridModel.encode` and `predict` place them there too).

Held-out evaluation. `eval_data` tasks are never trained on, demonstrations included: the hybrid
reads demonstrations in its prompt, and has no per-task embedding that could learn from them (every
row uses the TRM's blank puzzle id 0). An evaluation task whose test input is a grid of the training
tasks is refused by content (`find_leakage`) unless `leakage` is exclude or allow.
`evaluate_hybrid` predicts each test input under `eval_augmentations` views, maps every grid back by
the inverse augmentation, votes, and submits the top two: once for the TRM's grids and once for the
LM's answers, each scored per task and per test output.

Prompt-state cache. The backbone is frozen, so the hidden states of a prompt never change: with
`cache_hidden_states`, they are computed once per training prompt (one prompt at a time, unpadded)
into an Arrow file of the datasets cache, keyed by the prompts and the backbone, and fed to the model
as `prompt_hidden`; with the model's layout prompt_first the file also holds every layer's keys and
values of the prompt (`prompt_kv`), and a training step runs no prompt forward at all. Keys and
values take layers x 2 x KV heads x head dim numbers per token: 16x the hidden states at LLaMA-3-8B
(128 KiB against 8 KiB per token in bf16; stored here as float32, twice that). They equal the recomputed states bit for bit when the batch has one prompt; in a
larger batch the recomputed states come from a left-padded batch whose different matmul shapes and
RoPE angles round differently (relative positions, hence the maths, are the same): about 1e-6.
Under mixed precision the cache holds the backbone's own-dtype states, where the recomputing path
would run under autocast. Refused with LoRA, where the backbone trains and its states change. With
layout prefix_first the cache skips only the prompt's encoding: the LM loss still runs the backbone
forward and backward over [prefix ; prompt ; answer]; with prompt_first it runs over [prefix ; answer].

Loop. `batch_size` is global (split over processes); `gradient_accumulation_steps` micro-batches make
one optimiser step; `max_steps` counts optimiser steps. The rows of micro-batch i are a pure function
of (seed, i) and the TRM's halting-exploration draws use a generator seeded from (seed, i, rank), so a
resumed run computes exactly what the uninterrupted one would. AdamW on the parts named in
`trainable_parts` (plus LoRA weights when the backbone has them), warmup then cosine decay,
gradient clipping, accelerate's mixed precision.

Checkpoints. `out_dir/checkpoints/step-NNNNNNN/` is `accelerator.save_state` (model, optimiser,
scheduler, RNG and grad-scaler state) plus `joint_state.json` (step and config). Only trained
weights are saved (the frozen backbone is reloaded from its source; under FSDP accelerate saves its
own sharded state, backbone included). At the end, the trained parts are exported with
`HybridModel.save_pretrained` to `out_dir/final`. The out dir, the cadence, atomic checkpoints, the
time limit, signals and the log are the one training loop's (`hybrid_pipeline.training`).

FSDP (experiments/configs/accelerate_fsdp.yaml) is written for large backbones but has not been run
here (no multi-GPU machine): the export gathers the full state first, LoRA is refused, and the
held-out evaluation is skipped (evaluate the export instead).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from hybrid_pipeline.arc.datasets import TextDataConfig, build_text_dataset
from hybrid_pipeline.arc.errors import ARCDataError, Problem
from hybrid_pipeline import training
from hybrid_pipeline.arc.files import atomic_write_json
from hybrid_pipeline.arc.scoring import score_submission, write_submission
from hybrid_pipeline.arc.tasks import LEAKAGE_POLICIES, Task, apply_leakage_policy, fitting, load_tasks
from hybrid_pipeline.arc.text import INPUT_MARKER, TEST_MARKER, parse_grid, task_to_prompt
from hybrid_pipeline.arc.wording import plural
from hybrid_pipeline.arc.views import View, plan_views, predict_under_views, task_augmentations, vote_views
from hybrid_pipeline.config import ConfigError, config_to_dict
from hybrid_pipeline.hybrid import LAYOUT_OF_OLD_CHECKPOINTS, HybridConfig, HybridModel
from hybrid_pipeline.runs import warn_random_weights
from hybrid_pipeline.training import TrainResult, batch_rows, process_share, run_training
from hybrid_pipeline.trm.checkpoint import CheckpointError, write_dir_atomically

STATE_NAME = "joint_state.json"
MIXED_PRECISION = ("no", "bf16", "fp16")
PARTS = ("text_to_latent", "vae", "trm", "refiner", "feedback")


@dataclass
class JointTrainConfig:
    """A joint training run. `experiments/configs/joint_tiny.yaml` holds the few values that make it a
    minutes-long CPU run; `joint_llama.yaml` a real LLaMA in 4-bit with LoRA."""

    model: HybridConfig = field(default_factory=HybridConfig)  # model.trm.seq_len is set to canvas**2
    data: str = "arc-agi-1:training"
    tasks: tuple[str, ...] | None = None  # ids / globs selecting from `data`
    limit: int | None = None
    eval_data: str | None = "arc-agi-1:evaluation"  # held out: never trained on
    eval_tasks: tuple[str, ...] | None = None
    eval_limit: int | None = None
    leakage: str = "refuse"  # evaluation tasks found in the training data: refuse | exclude | allow
    canvas: int = 30  # TRM canvas side; tasks with a larger grid are skipped (with a note)
    num_augmentations: int = 8  # per training task, identity included
    leave_one_out: bool = True  # demonstration k asked from the others, besides the test pairs
    max_prompt_tokens: int | None = None  # drop rows with longer prompts (memory), with a note
    trainable_parts: tuple[str, ...] = PARTS  # the rest is frozen; LoRA trains when model.backbone.lora
    cache_hidden_states: bool = False
    batch_size: int = 8  # global per micro-batch, over all processes
    gradient_accumulation_steps: int = 1
    max_steps: int = 1000  # optimiser steps
    time_limit_s: float | None = None  # stop (checkpoint, evaluate, export) after this wall-clock time
    lr: float = 1e-4
    warmup_steps: int = 100
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.01
    grad_clip: float | None = 1.0
    mixed_precision: str | None = None  # no | bf16 | fp16; None: accelerate's (`accelerate launch --mixed_precision`, default no)
    ddp_find_unused_parameters: bool = False  # needed when a part gets no gradient (a loss weight 0)
    log_with: tuple[str, ...] = ("tensorboard",)  # accelerate trackers; missing ones are skipped with a note
    log_every: int = 10
    eval_every: int = 0  # optimiser steps; 0: only at the end
    eval_augmentations: int = 2  # views voted per test input, identity first
    eval_batch_size: int = 8
    eval_max_new_tokens: int | None = None  # LM answer length; None: a full canvas
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    out_dir: str = "runs/joint"
    cache_dir: str | None = ".cache/datasets"
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("canvas", "num_augmentations", "batch_size", "gradient_accumulation_steps", "max_steps",
                    "log_every", "eval_augmentations", "eval_batch_size", "checkpoint_every", "keep_checkpoints"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if not 1 <= self.canvas <= 30:
            raise ValueError(f"canvas must be 1..30, got {self.canvas}")
        if self.warmup_steps < 0 or self.eval_every < 0:
            raise ValueError("warmup_steps and eval_every must be >= 0")
        if self.leakage not in LEAKAGE_POLICIES:
            raise ValueError(f"leakage must be refuse, exclude or allow, got {self.leakage!r}")
        if self.mixed_precision is not None and self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {self.mixed_precision!r}")
        unknown = [p for p in self.trainable_parts if p not in PARTS]
        if unknown:
            raise ValueError(f"trainable_parts: unknown part {unknown[0]!r}; parts are {', '.join(PARTS)}")
        if self.cache_hidden_states and self.model.backbone.lora:
            raise ValueError("cache_hidden_states needs a frozen backbone, but model.backbone.lora is on: LoRA "
                             "changes the hidden states as it trains; turn one of them off")


# --------------------------------------------------------------------------------------------------
# data


@dataclass
class JointData:
    """Training rows (prompt, test input grid, answer grid), the optional hidden-state cache, and the
    held-out tasks."""

    prompts: list[str]
    inputs: list[np.ndarray]   # test input of each row, in the row's augmented frame
    outputs: list[np.ndarray]  # its expected answer
    task_ids: list[str]
    train_tasks: list[Task]
    eval_tasks: list[Task]
    hidden: Any = None         # datasets.Dataset with "hidden" [T_i, D_llm] (and "kv" [T_i, layers*2*H*hd]) float32 per row
    hidden_dtype: torch.dtype = torch.float32  # what the backbone produced (float32 holds it exactly)
    kv_shape: tuple[int, ...] | None = None    # (layers, 2, H_kv, head_dim) when the cache holds keys and values

    def __len__(self) -> int:
        return len(self.prompts)

    def batch_rows(self, index: int, batch_size: int, seed: int) -> np.ndarray:
        """Rows of global micro-batch `index` (`training.batch_rows`: a function of the index alone)."""
        return batch_rows(index, batch_size, len(self), seed)

    def batch(self, rows: Sequence[int], model: HybridModel) -> dict[str, torch.Tensor]:
        """A `HybridModel` batch of these rows on the model's device (with `prompt_hidden` when cached)."""
        rows = [int(r) for r in rows]
        batch = model.encode([self.prompts[r] for r in rows], [self.inputs[r] for r in rows],
                             test_outputs=[self.outputs[r] for r in rows])
        if self.hidden is not None:
            mask = batch["prompt_mask"]  # [B,T], left-padded
            B, T = mask.shape
            states = self.hidden.with_format("torch")[rows]["hidden"]  # B tensors [T_i, D_llm]
            hidden = torch.zeros(B, T, states[0].shape[-1], dtype=self.hidden_dtype)
            for i, state in enumerate(states):
                hidden[i, T - state.shape[0]:] = state.to(self.hidden_dtype)  # exact: float32 held it
            batch["prompt_hidden"] = hidden.to(mask.device)  # [B,T,D_llm]; padding cells are masked out
            if self.kv_shape is not None:
                layers, two, heads, head_dim = self.kv_shape
                kv = torch.zeros(layers, two, B, heads, T, head_dim, dtype=self.hidden_dtype)
                for i, row in enumerate(self.hidden.with_format("torch")[rows]["kv"]):  # [T_i, layers*2*H*hd]
                    row = row.view(row.shape[0], layers, two, heads, head_dim).permute(1, 2, 3, 0, 4)
                    kv[:, :, i, :, T - row.shape[-2]:] = row.to(self.hidden_dtype)
                batch["prompt_kv"] = kv.to(mask.device)  # [layers,2,B,H,T,hd]; padding keys are masked out
        return batch


def load_joint_tasks(config: JointTrainConfig, say: Callable[[str], Any] = print) -> tuple[list[Task], list[Task]]:
    """(training tasks, held-out tasks) that fit the canvas, after refusing leakage between them.
    Notes (skipped tasks, allowed leakage) go to `say`."""
    train = load_tasks(config.data, ids=config.tasks, limit=config.limit,
                       require_solutions=True).raise_if_problems().tasks
    held_out: list[Task] = []
    if config.eval_data:
        held_out = load_tasks(config.eval_data, ids=config.eval_tasks, limit=config.eval_limit,
                              require_solutions=True).raise_if_problems().tasks
        # the same task under both ids (one spec and selection for both) would be trained on and scored
        held_ids = {t.id for t in held_out} if config.eval_data == config.data else set()
        train = [t for t in train if t.id not in held_ids]
        held_out = apply_leakage_policy(held_out, train, config.leakage, held_out_label=config.eval_data,
                                        train_label=f"the training tasks of {config.data}", say=say)
    train, held_out = fitting(train, config.canvas, say), fitting(held_out, config.canvas, say)
    if not train:
        raise ARCDataError(Problem(f"no training task of {config.data!r} (tasks={config.tasks}, limit={config.limit}) "
                                   f"fits the {config.canvas}x{config.canvas} canvas"))
    return train, held_out


def build_joint_data(config: JointTrainConfig, train_tasks: list[Task], eval_tasks: list[Task],
                     tokenizer: Any, say: Callable[[str], Any] = print) -> JointData:
    """Training rows from the data layer's text dataset (cached by content hash)."""
    text = build_text_dataset(train_tasks, TextDataConfig(num_augmentations=config.num_augmentations,
                                                          leave_one_out=config.leave_one_out, seed=config.seed),
                              cache_dir=config.cache_dir)
    prompts, answers, task_ids = text["prompt"], text["answer"], text["task_id"]
    keep = list(range(len(prompts)))
    if config.max_prompt_tokens is not None:
        keep = [i for i in keep if len(tokenizer(prompts[i])["input_ids"]) <= config.max_prompt_tokens]
        if len(keep) < len(prompts):
            say(f"note: dropped {len(prompts) - len(keep)} of {plural(len(prompts), 'row')} with prompts longer than "
                f"max_prompt_tokens={config.max_prompt_tokens}")
        if not keep:
            raise ARCDataError(Problem(f"every training prompt is longer than max_prompt_tokens={config.max_prompt_tokens}"))
    test_header = f"{TEST_MARKER}\n{INPUT_MARKER}\n"
    return JointData(prompts=[prompts[i] for i in keep],
                     inputs=[parse_grid(prompts[i].rpartition(test_header)[2]) for i in keep],
                     outputs=[parse_grid(answers[i]) for i in keep],
                     task_ids=[task_ids[i] for i in keep], train_tasks=train_tasks, eval_tasks=eval_tasks)


def backbone_fingerprint(model: HybridModel) -> dict[str, Any]:
    """What decides a prompt's hidden states: the backbone config (not where it runs), the device type
    (kernels differ) and, for a local checkpoint, its files' sizes and modification times."""
    backbone = model.backbone.config
    values = {k: v for k, v in config_to_dict(backbone).items() if k != "device"}
    values["device_type"] = model.backbone.device.type
    path = Path(backbone.name_or_path).expanduser()
    if path.is_dir():
        values["files"] = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in path.iterdir()
                                 if p.is_file())
    return values


def cache_prompt_hidden(model: HybridModel, prompts: Sequence[str], cache_dir: str | os.PathLike | None,
                        *, progress: bool = True) -> tuple[Any, torch.dtype, tuple[int, ...] | None]:
    """The states of each prompt (encoded alone, so with no padding) as a `datasets.Dataset`
    memory-mapped from `cache_dir`, the dtype the backbone produced them in, and the shape
    (layers, 2, H_kv, head_dim) of a token's keys and values when the model's layout is prompt_first
    and the cache holds them (else None).

    Keyed by the prompts, the layout and `backbone_fingerprint`, so a second run (or another process)
    loads it. Written row by row (a real LLM's states are GBs) into a scratch directory that is then
    renamed.
    """
    from datasets import Array2D, Dataset, Features
    from datasets.arrow_writer import ArrowWriter
    from tqdm.auto import tqdm

    with_kv = model.config.layout == "prompt_first"
    key = hashlib.sha256(json.dumps({**backbone_fingerprint(model), "kv": with_kv}, sort_keys=True).encode())
    for prompt in prompts:
        key.update(prompt.encode() + b"\0")
    target = Path(cache_dir or ".cache/datasets") / f"joint-hidden-{key.hexdigest()[:24]}"
    if not (target / "data.arrow").is_file():
        probe = model.encode([prompts[0]], [np.zeros((1, 1), np.uint8)])  # a grid is needed, and not read
        with torch.no_grad():
            kv = model.encode_prompt(probe["prompt_ids"][:, :1], probe["prompt_mask"][:, :1]).kv
        kv_shape = None if kv is None else [kv.shape[0], kv.shape[1], kv.shape[3], kv.shape[5]]
        columns = {"hidden": Array2D(shape=(None, model.backbone.hidden_size), dtype="float32")}
        if kv_shape is not None:
            columns["kv"] = Array2D(shape=(None, math.prod(kv_shape)), dtype="float32")

        def write(scratch: Path) -> None:
            dtypes = set()
            with ArrowWriter(features=Features(columns), path=str(scratch / "data.arrow")) as writer:
                for prompt in tqdm(prompts, desc="cache prompt states", disable=not progress):
                    batch = model.encode([prompt], [np.zeros((1, 1), np.uint8)])
                    with torch.no_grad():
                        states = model.encode_prompt(batch["prompt_ids"], batch["prompt_mask"])
                    hidden = states.hidden[0]  # [T,D_llm]
                    dtypes.add(str(hidden.dtype).removeprefix("torch."))
                    row = {"hidden": hidden.float().cpu().numpy()}
                    if states.kv is not None:  # [layers,2,1,H,T,hd] -> [T, layers*2*H*hd]
                        kv = states.kv[:, :, 0].permute(3, 0, 1, 2, 4)
                        row["kv"] = kv.reshape(kv.shape[0], -1).float().cpu().numpy()
                    writer.write(row)
                writer.finalize()
            atomic_write_json(scratch / "meta.json", {"rows": len(prompts), "dtype": dtypes.pop() if dtypes else "float32",
                                                      "kv_shape": kv_shape})

        write_dir_atomically(target, write)
    meta = json.loads((target / "meta.json").read_text())
    kv_shape = tuple(meta["kv_shape"]) if meta.get("kv_shape") else None
    return Dataset.from_file(str(target / "data.arrow")), getattr(torch, meta["dtype"]), kv_shape


# --------------------------------------------------------------------------------------------------
# the run

# Settings a resume may change (besides `training.RESUME_FREE_KEYS`: the time limit, the cadence of
# logs, evaluations and checkpoints, out_dir and cache_dir): how the held-out evaluation runs and
# which trackers log. max_steps may not: the cosine schedule runs to it.
RESUME_FREE_KEYS = training.RESUME_FREE_KEYS + ("eval_augmentations", "eval_batch_size", "eval_max_new_tokens",
                                                "log_with")


# Settings added since older runs were recorded, with the value those runs ran with.
IMPLIED_BY_OLDER_RUNS = {"model.layout": LAYOUT_OF_OLD_CHECKPOINTS}


def train_joint(config: JointTrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
                stop_after: int | None = None) -> TrainResult:
    """Train (or resume) the hybrid on the one training loop (`hybrid_pipeline.training`); returns
    where the export is.

    Everything that can be wrong with the input (config, data, backbone, out dir) raises before the
    first step. A fresh run into an out dir that holds a training run is refused unless
    `overwrite`, which removes that run first. `resume` continues from the last checkpoint and
    refuses any other setting than the run's, naming each, before a file is touched; it may change
    only `time_limit_s`, `log_every`, `eval_every`, `checkpoint_every`, `keep_checkpoints`,
    `out_dir`, `cache_dir`, `eval_augmentations`, `eval_batch_size`, `eval_max_new_tokens` and
    `log_with`. With no checkpoint there, `resume` starts a fresh run and says so. SIGINT and
    SIGTERM write a checkpoint of the step in progress, then raise KeyboardInterrupt /
    `runs.Terminated`. `stop_after` ends this call after that many optimiser steps, with no final
    export (tests use it to simulate a kill between checkpoints).
    """
    return run_training(JointTrainer(config, progress=progress), config, free=RESUME_FREE_KEYS, resume=resume, overwrite=overwrite,
                        progress=progress, stop_after=stop_after, implied=IMPLIED_BY_OLDER_RUNS)


def checkpoint_keys(model: HybridModel) -> set[str]:
    """Keys of `model.state_dict()` a checkpoint holds: everything but the frozen backbone (LoRA kept)."""
    lora = {f"backbone.{n}" for n, p in model.backbone.named_parameters() if p.requires_grad}
    return {k for k in model.state_dict() if not k.startswith("backbone.") or k in lora}


class JointTrainer:
    """The hybrid's part of a training run (`training.Trainer`): micro-batches with gradient
    accumulation, AdamW with warmup and cosine decay, `accelerator.save_state` checkpoints of the
    trained weights only, held-out evaluation of both the TRM's grids and the LM's answers."""

    name, state_name, run_files = "joint", STATE_NAME, ("eval", "joint")  # "joint": the trackers' folder
    metric_names = ("loss", "lm_loss", "grid_loss", "halt_loss", "kl", "cell_accuracy", "exact_accuracy",
                    "q_halt_mean")

    def __init__(self, config: JointTrainConfig, *, progress: bool = True) -> None:
        self.config, self.progress = config, progress  # progress: bars for the hidden-state cache and evaluations
        self.model: HybridModel | None = None

    def accelerator_kwargs(self) -> dict[str, Any]:
        from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs

        config = self.config
        return dict(
            mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.gradient_accumulation_steps,
            # the global batch is split over processes, so the schedule steps once per optimiser step
            dataloader_config=DataLoaderConfiguration(split_batches=True),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.ddp_find_unused_parameters)])

    def prepare(self, accelerator: Any, checkpoint: Path | None, say: Callable[[str], None]) -> None:
        from transformers import get_cosine_schedule_with_warmup

        config = self.config
        self.accelerator = accelerator
        train_tasks, eval_tasks = load_joint_tasks(config, say)  # every user error surfaces before any step
        model = self.model = self.build_model()
        trainable = model.trainable_parameters()
        with accelerator.main_process_first():  # one process builds the caches, the others load them
            self.data = data = build_joint_data(config, train_tasks, eval_tasks, model.backbone.tokenizer, say)
            if config.cache_hidden_states:
                data.hidden, data.hidden_dtype, data.kv_shape = cache_prompt_hidden(model, data.prompts, config.cache_dir,
                                                                     progress=self.progress and accelerator.is_main_process)
        optimizer = torch.optim.AdamW(trainable, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
        scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.max_steps)
        self.ddp_model, self.optimizer, self.scheduler = accelerator.prepare(model, optimizer, scheduler)
        self.trainable = trainable
        self.register_trained_only(checkpoint_keys(model))
        if checkpoint is not None:
            accelerator.load_state(str(checkpoint))
        self.sums = torch.zeros(len(self.metric_names) + 1, dtype=torch.float64)  # the metrics, then the count
        self.grad_norm = None
        self.ddp_model.train()
        prompt_states = ("cached" + (" (hidden, keys and values)" if data.kv_shape else " (hidden)")
                         if data.hidden is not None else "computed each step")
        say(f"joint training: {plural(len(data), 'row', thousands=True)} from {plural(len(train_tasks), 'task')} x "
            f"{plural(config.num_augmentations, 'augmentation')}"
            f"{' (test pairs and leave-one-out)' if config.leave_one_out else ''}, "
            f"{plural(len(eval_tasks), 'held-out task')}, "
            f"{plural(accelerator.num_processes, 'process', 'processes')}, layout {model.config.layout}, "
            f"prompt states {prompt_states}")
        say(str(model.parameter_report()))
        if model.backbone.random_weights and accelerator.is_main_process:  # the frozen LM never trains
            warn_random_weights([f"backbone {config.model.backbone.name_or_path}"],
                                "set model.backbone.name_or_path to a trained LM")
        if self.fsdp and eval_tasks:
            say("note: no held-out evaluation under FSDP (predict would bypass the sharded forward); evaluate "
                f"{Path(config.out_dir) / 'final'} afterwards with hybrid_pipeline.joint.evaluate_hybrid")

    def build_model(self) -> HybridModel:
        """The hybrid on this process's device, with the parts outside `trainable_parts` frozen."""
        from accelerate.utils import DistributedType

        config, accelerator = self.config, self.accelerator
        backbone = config.model.backbone
        model_config = dataclasses.replace(
            config.model, trm=dataclasses.replace(config.model.trm, seq_len=config.canvas ** 2),
            backbone=dataclasses.replace(backbone, device=backbone.device or str(accelerator.device)))
        model = HybridModel.from_config(model_config)  # BackboneLoadError when the backbone cannot load
        self.fsdp = accelerator.distributed_type == DistributedType.FSDP
        if self.fsdp and model.backbone_trains:
            raise ConfigError("LoRA under FSDP is not supported by the export (peft would save sharded adapter "
                              "weights); use DDP, or FSDP without model.backbone.lora")
        for name in PARTS:
            part = getattr(model, name)
            if part is not None and name not in config.trainable_parts:
                part.requires_grad_(False)
        if not model.trainable_parameters():
            raise ConfigError(f"nothing to train: trainable_parts={list(config.trainable_parts)} and no LoRA")
        return model

    def register_trained_only(self, keys: set[str]) -> None:
        """Checkpoints hold the trained weights only: a real LLM's frozen weights are GBs per
        checkpoint, and the backbone reloads from its source."""
        accelerator = self.accelerator

        def save_trained_only(models: list, weights: list, output_dir: str) -> None:
            for i, m in enumerate(models):
                state = accelerator.unwrap_model(m).state_dict()
                weights[i] = {k: v for k, v in state.items() if k in keys}

        def load_trained_only(models: list, input_dir: str) -> None:
            from accelerate.utils import SAFE_WEIGHTS_NAME
            from safetensors.torch import load_file

            while models:  # popped: accelerate would otherwise load the file strictly, backbone expected
                target = accelerator.unwrap_model(models.pop())
                path = Path(input_dir) / SAFE_WEIGHTS_NAME
                state = load_file(str(path), device=str(accelerator.device))
                missing, unexpected = sorted(keys - set(state)), sorted(set(state) - keys)
                if missing or unexpected:
                    raise CheckpointError(f"{path}: weights do not match the model: "
                                          + ", ".join([f"missing {k}" for k in missing[:3]]
                                                      + [f"unexpected {k}" for k in unexpected[:3]]))
                target.load_state_dict(state, strict=False)  # strict over the trained keys, checked above

        accelerator.register_save_state_pre_hook(save_trained_only)
        accelerator.register_load_state_pre_hook(load_trained_only)

    def forward_generator(self, index: int) -> torch.Generator:
        """Halting exploration (and VAE / diffusion draws) as a function of the micro-batch and rank."""
        seed = int(np.random.SeedSequence([self.config.seed, index, self.accelerator.process_index]).generate_state(1)[0])
        return torch.Generator(device=self.accelerator.device).manual_seed(seed)

    def train_step(self, step: int) -> None:
        config, accelerator = self.config, self.accelerator
        accum = config.gradient_accumulation_steps
        for micro in range(accum):
            index = step * accum + micro
            rows = process_share(self.data.batch_rows(index, config.batch_size, config.seed), accelerator)
            batch = self.data.batch(rows, self.model)
            with accelerator.accumulate(self.ddp_model):
                out = self.ddp_model(batch, generator=self.forward_generator(index))
                accelerator.backward(out.loss)
                if accelerator.sync_gradients and config.grad_clip:
                    self.grad_norm = accelerator.clip_grad_norm_(self.trainable, config.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            self.sums += torch.tensor([out.metrics[n] for n in self.metric_names] + [1.0], dtype=torch.float64)

    def metrics(self) -> dict[str, Any]:
        mean = self.accelerator.reduce(self.sums.to(self.accelerator.device), "mean").cpu()
        self.sums.zero_()
        return {"lr": self.scheduler.get_last_lr()[0],
                **{n: float(mean[i] / mean[-1]) for i, n in enumerate(self.metric_names)},
                "grad_norm": None if self.grad_norm is None else float(self.grad_norm)}

    def save(self, directory: Path, step: int) -> None:
        self.accelerator.save_state(str(directory))  # every process: model, optimiser, scheduler, RNG
        if self.accelerator.is_main_process:
            atomic_write_json(directory / STATE_NAME, {"step": step, "config": config_to_dict(self.config)}, indent=2)

    def evaluate(self, final: bool) -> dict[str, Any] | None:
        # every process predicts its shard of the tasks (no one idles into a collective timeout on a
        # long evaluation); the main process scores them all
        from accelerate.utils import gather_object

        config, accelerator, tasks = self.config, self.accelerator, self.data.eval_tasks
        if not tasks or self.fsdp:
            return None
        world, main = accelerator.num_processes, accelerator.is_main_process
        self.ddp_model.eval()
        with accelerator.autocast():
            mine = predict_attempts(accelerator.unwrap_model(self.ddp_model), tasks[accelerator.process_index::world],
                                    augmentations=config.eval_augmentations, seed=config.seed,
                                    batch_size=config.eval_batch_size, max_new_tokens=config.eval_max_new_tokens,
                                    progress=self.progress and main)
        self.ddp_model.train()
        parts = gather_object([mine]) if world > 1 else [mine]
        write_to = Path(config.out_dir) / "eval" if final else None
        return score_attempts(merge_attempts(parts), tasks, write_to=write_to) if main else None

    def logged_eval(self, result: dict[str, Any]) -> dict[str, Any]:
        return {source: {k: v for k, v in scores.items() if k != "per_task"} for source, scores in result.items()}

    def export(self, directory: Path) -> None:
        """The trained parts, `HybridModel.save_pretrained` (under FSDP, gathered first)."""
        if self.fsdp:
            export_fsdp(self.accelerator, self.ddp_model, directory)
        elif self.accelerator.is_main_process:
            self.accelerator.unwrap_model(self.ddp_model).save_pretrained(directory)

    def summary(self, eval_result: dict[str, Any] | None) -> dict[str, Any]:
        return {"rows": len(self.data), "train_tasks": len(self.data.train_tasks),
                "eval_tasks": [t.id for t in self.data.eval_tasks], "eval": eval_result,
                "parameters": self.model.parameter_report().to_dict()}


def export_fsdp(accelerator: Any, ddp_model: Any, directory: Path) -> None:
    """FSDP shards the trained parts with the backbone: gather the full state (a collective), then
    build the same parts around the unwrapped backbone on the main process and export those."""
    state = accelerator.get_state_dict(ddp_model)
    if not accelerator.is_main_process:
        return
    unwrapped = accelerator.unwrap_model(ddp_model)
    export = HybridModel.from_config(unwrapped.config, backbone=unwrapped.backbone)
    export.load_state_dict({k: v for k, v in state.items() if not k.startswith("backbone.")}, strict=False)
    export.save_pretrained(directory)


# --------------------------------------------------------------------------------------------------
# evaluation


def evaluate_hybrid(model: HybridModel, tasks: Sequence[Task], *, augmentations: int = 2, seed: int = 0,
                    batch_size: int = 8, max_new_tokens: int | None = None, write_to: str | os.PathLike | None = None,
                    progress: bool = False) -> dict[str, dict[str, Any]]:
    """ARC scores (2 attempts) of the TRM's grids and of the LM's answers on `tasks`: `predict_attempts`
    then `score_attempts` (see them)."""
    predicted = predict_attempts(model, tasks, augmentations=augmentations, seed=seed, batch_size=batch_size,
                                 max_new_tokens=max_new_tokens, progress=progress)
    return score_attempts(predicted, tasks, write_to=write_to)


def predict_attempts(model: HybridModel, tasks: Sequence[Task], *, augmentations: int = 2, seed: int = 0,
                     batch_size: int = 8, max_new_tokens: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Two attempts per test input from the TRM's grids and from the LM's answers.

    Each test input is predicted under the views `arc.views.task_augmentations(task.id, augmentations,
    seed)` (identity first; a task gets the same views in any shard of the task list); every grid is
    mapped back by the inverse augmentation and voted per source (`arc.views`), TRM votes tie-broken
    by q_halt, then by the first vote; the top two are the attempts. Prompts are built from the tasks with their solutions removed: nothing
    here reads an expected output. Returns {"trm": {task id: [attempts per test input]}, "lm": {...},
    "views": number of views, "decoded": {source: views that gave a readable grid}}.
    """
    views = plan_views(tasks, lambda task: task_augmentations(task.id, augmentations, seed))
    generator = torch.Generator(device=model.backbone.device).manual_seed(seed)
    answers: list[tuple[View, list[tuple[np.ndarray | None, float]]]] = []  # the LM's, voted after the TRM's

    def predict(batch: Sequence[View]) -> list[list[tuple[np.ndarray | None, float]]]:
        encoded = model.encode([task_to_prompt(v.task, v.test_index) for v in batch], [v.input for v in batch])
        prediction = model.predict(encoded, max_new_tokens=max_new_tokens, generator=generator)
        answers.extend((v, [(grid, 0.0)]) for v, grid in zip(batch, prediction.answer_grids))
        return [[(grid, float(q))] for grid, q in zip(prediction.trm_grids, prediction.q_halt_logits.tolist())]

    boxes = {"trm": predict_under_views(views, predict, batch_size=batch_size, progress=progress, desc="evaluate")}
    boxes["lm"] = vote_views(answers)
    out: dict[str, Any] = {source: {t.id: [box.top(t.id, j, 2) for j in range(len(t.test))] for t in tasks}
                           for source, box in boxes.items()}
    decoded = {source: sum(c.votes for t in tasks for j in range(len(t.test)) for c in box.ranked(t.id, j))
               for source, box in boxes.items()}
    return {**out, "views": len(views), "decoded": decoded}


def merge_attempts(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """`predict_attempts` results of disjoint task shards (one per process) as one."""
    merged: dict[str, Any] = {"trm": {}, "lm": {}, "views": 0, "decoded": {"trm": 0, "lm": 0}}
    for part in parts:
        for source in ("trm", "lm"):
            merged[source].update(part[source])
            merged["decoded"][source] += part["decoded"][source]
        merged["views"] += part["views"]
    return merged


def score_attempts(predicted: dict[str, Any], tasks: Sequence[Task], *,
                   write_to: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """{"trm": score, "lm": score}, each `ScoreReport.to_dict()` (per task and per test output) plus
    "decoded", the fraction of views that gave a readable grid. With `write_to`, `trm_submission.json`
    and `lm_submission.json` go there (Kaggle format: `hybrid-arc score` reads them)."""
    result = {}
    for source in ("trm", "lm"):
        report = score_submission(predicted[source], tasks).to_dict()
        result[source] = {**report, "decoded": predicted["decoded"][source] / max(predicted["views"], 1)}
        if write_to is not None:
            write_submission(Path(write_to) / f"{source}_submission.json", predicted[source], tasks)
    return result


__all__ = ["JointData", "JointTrainConfig", "JointTrainer", "TrainResult", "build_joint_data", "cache_prompt_hidden",
           "evaluate_hybrid", "load_joint_tasks", "predict_attempts", "score_attempts", "train_joint"]
