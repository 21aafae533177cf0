"""Test-time training (TTT): a LoRA adapter trained on one task's demonstrations, used, then removed.

Per task, a fresh LoRA adapter (peft: `LoraConfig`, then `get_peft_model` on a plain model or
`add_adapter` on a `PeftModel`) goes on the frozen backbone and trains for `steps` optimiser steps
on the task's demonstrations alone: each demonstration's output is the answer to a prompt holding
the other demonstrations and its input (`arc.tasks.leave_one_out`, `arc.text.task_to_prompt`),
optionally under `augment` random augmentations of the task as well (`arc.views.task_augmentations`:
dihedral transform and colour permutation, the original first). The test outputs are never read:
the rows come from the task with its solutions removed. The adapter then answers the task's test
inputs and is removed again (`unload` / `delete_adapter`), so the base weights are the same
tensors, bit for bit, after every task.

    adapter = fit_task_adapter(backbone, task, TTTConfig(steps=32))   # trains; the backbone is as before
    with adapter.installed(backbone):                                  # its LoRA weights, for this block
        answers = ...

Everything is a function of `seed` and the task id: the adapter's initial weights, the row order and
(for a masked-diffusion backbone) the masking. Causal backbones train on the answer tokens' next-token
loss; diffusion backbones on the masked-diffusion loss at answer positions. A 4-bit or 8-bit backbone
is prepared once with peft's `prepare_model_for_kbit_training` (no gradient checkpointing).
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import nn

from hybrid_pipeline.arc.tasks import Task, leave_one_out
from hybrid_pipeline.arc.text import grid_to_text, task_to_prompt
from hybrid_pipeline.arc.views import stable_int, task_augmentations, task_rng
from hybrid_pipeline.backbones.base import answer_token_ids, pad_token_rows

ADAPTER_NAME = "ttt"  # the adapter's name in peft, beside any adapter the backbone already has


@dataclass
class TTTConfig:
    """How a task's adapter trains. `steps` 0 turns test-time training off (nothing is added)."""

    steps: int = 0          # optimiser steps per task
    lr: float = 1e-4        # AdamW, constant, no weight decay
    rank: int = 8           # LoRA r
    alpha: int = 16         # LoRA alpha (the update is scaled by alpha / r)
    batch_size: int = 1     # leave-one-out rows per step
    augment: int = 0        # random augmentations of the task trained on besides the original
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("steps", "augment", "seed"):
            if getattr(self, key) < 0:
                raise ValueError(f"ttt {key} must be >= 0, got {getattr(self, key)}")
        for key in ("rank", "alpha", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"ttt {key} must be >= 1, got {getattr(self, key)}")
        if not self.lr > 0:
            raise ValueError(f"ttt lr must be > 0, got {self.lr}")
        self.target_modules = tuple(self.target_modules)

    def lora_config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=0.0,
                          target_modules=list(self.target_modules))


@dataclass
class TaskAdapter:
    """A task's trained LoRA weights (None when nothing trained) and how the training went."""

    task_id: str
    config: TTTConfig
    state: dict[str, torch.Tensor] | None
    losses: list[float] = field(default_factory=list)  # one per step, before its update
    rows: int = 0           # leave-one-out rows over all augmentations
    seconds: float = 0.0
    skipped: str | None = None  # why nothing trained

    @contextmanager
    def installed(self, backbone: Any) -> Iterator[TaskAdapter]:
        """The adapter on `backbone` for the block (nothing when it has no weights), removed after."""
        if self.state is None:
            yield self
            return
        with lora_adapter(backbone, self.config, seed=0) as model, torch.no_grad():
            # copied parameter by parameter: loading a state dict into a 4-bit model makes bitsandbytes
            # rework the quantised weights it did not even receive
            for name, parameter in _adapter_parameters(model).items():
                parameter.copy_(self.state[name])
            yield self

    def record(self) -> dict[str, Any]:
        """What a results line says about it."""
        out: dict[str, Any] = {"steps": len(self.losses), "rows": self.rows, "seconds": round(self.seconds, 4)}
        if self.losses:
            out.update(loss_first=round(self.losses[0], 6), loss_last=round(self.losses[-1], 6))
        if self.skipped:
            out["skipped"] = self.skipped
        return out


def ttt_rows(task: Task, config: TTTConfig) -> list[tuple[str, str]]:
    """(prompt, answer text) pairs to train on: every demonstration asked from the others, under the
    original task and `config.augment` augmentations of it. Reads no test output."""
    blind = task.without_solutions()
    rows = []
    for augmentation in task_augmentations(task.id, config.augment + 1, config.seed):
        for sub in leave_one_out(augmentation.apply_task(blind)):
            rows.append((task_to_prompt(sub, 0), grid_to_text(sub.test[0].output)))
    return rows


def task_seed(task: Task, config: TTTConfig) -> int:
    """The seed of a task's adapter: its initial weights, row order and diffusion masking."""
    return stable_int(f"{config.seed}/{task.id}")


@contextmanager
def lora_adapter(backbone: Any, config: TTTConfig, *, seed: int) -> Iterator[nn.Module]:
    """A fresh LoRA adapter named `ADAPTER_NAME` on `backbone.model` (its A matrices drawn from `seed`,
    B zero, as peft initialises them) for the block; yields the peft model, whose trainable
    parameters are the adapter's. Afterwards the backbone holds the same modules and weights as before.

    A plain model gets `get_peft_model` and `unload`; a `PeftModel` (a backbone loaded with LoRA)
    `add_adapter` and `delete_adapter`, its own adapters staying active and frozen meanwhile.
    """
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    model = backbone.model
    if backbone.config.quantized:
        # Casts half-precision weights that are not quantised to float32 and freezes everything: a
        # no-op the second time, so every task may ask for it.
        prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():  # peft draws lora_A from the global RNG
        torch.manual_seed(seed)
        # peft asks transformers a deprecated question; the warning would repeat for every task
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        if isinstance(model, PeftModel):
            previous = list(model.active_adapters)
            model.add_adapter(ADAPTER_NAME, config.lora_config())
            model.base_model.set_adapter([*previous, ADAPTER_NAME])
            peft_model = model
        else:
            previous = None
            peft_model = get_peft_model(model, config.lora_config(), adapter_name=ADAPTER_NAME)
    trained = _adapter_parameters(peft_model)
    for name, parameter in peft_model.named_parameters():
        parameter.requires_grad_(name in trained)
    try:
        yield peft_model
    finally:
        if previous is None:
            backbone.model = peft_model.unload()  # the original modules back, unmerged
        else:
            model.delete_adapter(ADAPTER_NAME)
            model.base_model.set_adapter(previous)
        for name, parameter in backbone.model.named_parameters():
            parameter.requires_grad_(flags.get(name, False))


def fit_task_adapter(backbone: Any, task: Task, config: TTTConfig, *,
                     keep: bool = True) -> TaskAdapter:
    """Train a LoRA adapter on `task`'s demonstrations for `config.steps` steps and return its weights
    (`keep=False`: the losses only). The backbone is as before afterwards. A task with fewer than two
    demonstrations has nothing to learn from, and `steps` 0 asks for nothing: both return no weights."""
    rows = ttt_rows(task, config) if config.steps else []
    if not rows:
        why = "ttt steps is 0" if not config.steps else "fewer than two demonstrations"
        return TaskAdapter(task.id, config, None, skipped=why)
    start = time.perf_counter()
    seed = task_seed(task, config)
    order = task_rng(task.id, config.seed)
    generator = torch.Generator(device=backbone.device).manual_seed(seed)
    tokens = [answer_tokens(backbone.tokenizer, prompt, answer) for prompt, answer in rows]
    losses: list[float] = []
    with lora_adapter(backbone, config, seed=seed) as model:
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
        queue: list[int] = []
        with torch.enable_grad():
            for _ in range(config.steps):
                while len(queue) < config.batch_size:  # epochs of the rows, each in a fresh random order
                    queue += order.permutation(len(rows)).tolist()
                picked, queue = queue[:config.batch_size], queue[config.batch_size:]
                loss = answer_loss(backbone, [tokens[i] for i in picked], generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
        state = {k: v.detach().clone() for k, v in _adapter_parameters(model).items()} if keep else None
    return TaskAdapter(task.id, config, state, losses, len(rows), time.perf_counter() - start)


def demonstration_loss(backbone: Any, task: Task, config: TTTConfig) -> float:
    """The mean loss over the task's leave-one-out rows (under `config.augment` augmentations) with
    the backbone as it is now: what test-time training lowers. Causal backbones only."""
    rows = ttt_rows(task, config)
    if not rows:
        raise ValueError(f"task {task.id}: fewer than two demonstrations, no leave-one-out rows")
    with torch.no_grad():
        losses = [float(answer_loss(backbone, [answer_tokens(backbone.tokenizer, p, a)], None)) for p, a in rows]
    return sum(losses) / len(losses)


def _adapter_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The task adapter's parameters by name."""
    return {name: p for name, p in model.named_parameters() if f".{ADAPTER_NAME}." in name}


def answer_tokens(tokenizer: Any, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """Prompt ids (as generation encodes the prompt) and answer ids ending with EOS."""
    return tokenizer(prompt)["input_ids"], answer_token_ids(tokenizer, answer)


def answer_loss(backbone: Any, rows: list[tuple[list[int], list[int]]],
                generator: torch.Generator | None = None) -> torch.Tensor:
    """The backbone's own `answer_loss` (no prefix; causal: next-token cross-entropy, diffusion: the
    masked-diffusion loss drawn from `generator`) on `rows` (`answer_tokens`): prompts left-padded
    [B,T], answers right-padded [B,A]. Gradients reach whatever in the backbone trains."""
    pad = backbone.tokenizer.pad_token_id if backbone.tokenizer.pad_token_id is not None else 0
    prompt_ids, prompt_mask = (t.to(backbone.device) for t in pad_token_rows([p for p, _ in rows], pad, left=True))
    answer_ids, answer_mask = (t.to(backbone.device) for t in pad_token_rows([a for _, a in rows], pad, left=False))
    return backbone.answer_loss(None, prompt_ids, prompt_mask, answer_ids, answer_mask, layout="prefix_first",
                                generator=generator)
