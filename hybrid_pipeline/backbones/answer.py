"""Backbones as answer models: `n` text answers to one ARC prompt, the first greedy, the rest sampled.

`AnswerModel` is what the LLM-only baseline and the planner's LLM and program proposers need from a
model; `BackboneAnswerModel` is that protocol over a `CausalBackbone` or `DiffusionBackbone`, and
tests plug in scripted models. `GridEndStop` ends causal generation once more tokens cannot change
what `arc.text.parse_grid` reads, which is what keeps an untrained model from writing a whole canvas.
`adapted(model, task, ttt)` puts a LoRA adapter trained on the task's demonstrations on a
`BackboneAnswerModel` while it answers that task (`backbones.ttt`); with `ttt.steps` 0 it does nothing.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from typing import Any, ContextManager, Iterator, Protocol, Sequence

import torch

from hybrid_pipeline.arc.tasks import MAX_SIDE, Task
from hybrid_pipeline.arc.text import DIGITS
from hybrid_pipeline.backbones.config import BackboneConfig, BackboneLoadError
from hybrid_pipeline.backbones.ttt import TaskAdapter, TTTConfig, fit_task_adapter

# The largest answer: 30 rows of 30 digits and a newline, then EOS. With one token per character
# (or fewer characters per token) no valid answer needs more tokens than this.
MAX_ANSWER_TOKENS = MAX_SIDE * (MAX_SIDE + 1) + 1


class AnswerModel(Protocol):
    """What the baseline and the planner's proposers need from a model: `n` answers to one prompt, as text.

    Answer 0 is greedy; answers 1..n-1 are sampled at `temperature` (a repeat of answer 0 when it is
    0), reproducibly from `seed`. Optional attributes the baseline reads when present:
    `tokens_generated` (a running count, for tokens/s), `random_weights`, `name` and `kind`.
    """

    def generate_answers(self, prompt: str, n: int, *, temperature: float, max_new_tokens: int,
                         seed: int) -> list[str]: ...


class GridEndStop:
    """Stops generation once more tokens cannot change what `parse_grid` reads.

    That is after a blank line that follows a digit (the grid block has ended) or after a row of
    more than 30 digits (the answer can no longer be a valid grid). An untrained model constrained
    to digits never emits EOS on its own and would otherwise write all `max_new_tokens`. Only the
    last 31 tokens are looked at, in Python: a handful of tensor ops would cost more per token than
    the tiny test model's forward pass.
    """

    def __init__(self, newline_id: int, digit_ids: Sequence[int], max_side: int = MAX_SIDE):
        self.newline_id = newline_id
        self.digit_ids = frozenset(int(i) for i in digit_ids)
        self.max_side = max_side

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        """input_ids [B,N] holds only generated tokens (the backbone generates from inputs_embeds)."""
        tails = input_ids[:, -(self.max_side + 1):].tolist()
        return torch.tensor([self._done(tail) for tail in tails], dtype=torch.bool, device=input_ids.device)

    def _done(self, tail: list[int]) -> bool:
        if len(tail) >= 3 and tail[-1] == tail[-2] == self.newline_id and tail[-3] in self.digit_ids:
            return True
        return len(tail) > self.max_side and all(t in self.digit_ids for t in tail)


def grid_end_stop(tokenizer: Any) -> GridEndStop:
    """A `GridEndStop` for a tokenizer whose digits and newline are single tokens (checked by
    `grid_alphabet_ids`); the last id of each character's encoding is then the character's own."""
    def last_id(ch: str) -> int:
        return tokenizer.encode(ch, add_special_tokens=False)[-1]

    return GridEndStop(last_id("\n"), [last_id(d) for d in DIGITS])


class BackboneAnswerModel:
    """`AnswerModel` over a `CausalBackbone` or `DiffusionBackbone` and its tokenizer, through the
    backbone's `answer_cache` and `sample_answer`.

    Causal: the prompt is encoded once (`encode_prompt`) and every answer continues from a copy of
    its KV cache, so n answers cost one prompt pass instead of n (`reuse_prompt_cache=False` re-encodes,
    for comparison). Diffusion: no KV cache, as in LLaDA: attention goes both ways, so the prompt's
    keys and values change while the answer fills in and every step runs the whole sequence.
    `tokens_generated` counts new tokens (EOS included); for diffusion every filled position counts.
    `adapted_to(task, ttt)` answers with a LoRA adapter trained on the task's demonstrations; the
    last `keep_adapters` trained adapters are kept, so asking about the same task again (a retry, the
    next test input) trains nothing new. `ttt_seconds` counts the time spent training them.
    """

    def __init__(self, backbone: Any, *, constrain_to_grid: bool = True, reuse_prompt_cache: bool = True,
                 stop_at_grid_end: bool = True, diffusion_block_length: int = 32,
                 diffusion_steps_per_block: int = 16, generate_kwargs: dict[str, Any] | None = None,
                 keep_adapters: int = 8):
        from hybrid_pipeline.backbones.causal import grid_alphabet_ids

        self.backbone = backbone
        self.tokenizer = backbone.tokenizer
        self.constrain_to_grid = constrain_to_grid
        self.reuse_prompt_cache = reuse_prompt_cache
        self.diffusion_block_length = diffusion_block_length
        self.diffusion_steps_per_block = diffusion_steps_per_block
        self.generate_kwargs = dict(generate_kwargs or {})  # passed to model.generate (causal only)
        self.random_weights = bool(backbone.random_weights)
        self.name = backbone.config.name_or_path
        self.kind = backbone.config.kind
        self.tokens_generated = 0
        self.ttt_seconds = 0.0
        self.keep_adapters = keep_adapters
        self._adapters: OrderedDict[tuple[str, str, str], TaskAdapter] = OrderedDict()
        self._stop: dict[str, Any] = {}
        if constrain_to_grid:
            try:
                grid_alphabet_ids(self.tokenizer)  # fail now, not after the first task
            except ValueError as e:
                raise BackboneLoadError(f"backbone '{self.name}': {e}; run with constrain_to_grid off") from None
            if stop_at_grid_end:
                self._stop = backbone.stopping_kwargs()

    def generate_answers(self, prompt: str, n: int, *, temperature: float, max_new_tokens: int,
                         seed: int) -> list[str]:
        ids = self.tokenizer(prompt, return_tensors="pt").input_ids.to(self.backbone.device)  # [1,T]
        cache = self.backbone.answer_cache(ids) if self.reuse_prompt_cache else None
        answers: list[str] = []
        for k in range(n):
            if k > 0 and temperature == 0:
                answers.append(answers[0])  # greedy decoding would only repeat itself
            else:
                answers.append(self._continue(ids, cache, temperature if k else None, max_new_tokens, seed + k))
        return answers

    @contextmanager
    def adapted_to(self, task: Task, config: TTTConfig) -> Iterator[TaskAdapter]:
        """Answers in the block come from the backbone with `task`'s adapter on it (trained now unless
        kept from an earlier call about the same content and settings); yields the adapter."""
        key = (task.id, json.dumps(task.to_json(with_solutions=False)), repr(config))  # pairs in order
        adapter = self._adapters.pop(key, None)
        if adapter is None:
            adapter = fit_task_adapter(self.backbone, task, config)
            self.ttt_seconds += adapter.seconds
        self._adapters[key] = adapter
        while len(self._adapters) > self.keep_adapters:
            self._adapters.popitem(last=False)
        with adapter.installed(self.backbone):
            yield adapter

    def _continue(self, ids: torch.Tensor, cache: Any, temperature: float | None, max_new_tokens: int,
                  seed: int) -> str:
        """One answer after the prompt `ids` [1,T] (or its cache); greedy when temperature is None."""
        tokens, generated = self.backbone.sample_answer(
            ids, cache, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
            constrain_to_grid=self.constrain_to_grid, block_length=self.diffusion_block_length,
            steps_per_block=self.diffusion_steps_per_block, **self._stop, **self.generate_kwargs)
        self.tokens_generated += generated
        return self.tokenizer.decode(tokens, skip_special_tokens=True)


def adapted(model: AnswerModel, task: Task, config: TTTConfig | None) -> ContextManager[TaskAdapter | None]:
    """`model.adapted_to(task, config)`, or nothing when `config` is None or has 0 steps (the model
    then answers as it is). A model that cannot train at test time is refused with a clear error."""
    if config is None or config.steps == 0:
        return nullcontext(None)
    if not hasattr(model, "adapted_to"):
        raise TypeError(f"{type(model).__name__} cannot train at test time (no adapted_to); set ttt steps to 0")
    return model.adapted_to(task, config)


def load_answer_model(backbone: BackboneConfig, **options: Any) -> BackboneAnswerModel:
    """Load `backbone` and wrap it; `options` are `BackboneAnswerModel`'s. Raises BackboneLoadError when
    the backbone cannot be loaded, or cannot be constrained to the grid alphabet as asked."""
    from hybrid_pipeline.backbones import load_backbone

    return BackboneAnswerModel(load_backbone(backbone), **options)
