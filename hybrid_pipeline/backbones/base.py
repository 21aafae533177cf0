"""What the causal and the diffusion backbone share: a wrapped Hugging Face model, frozen unless LoRA
adapters train, the model facts the hybrid reads from it (width, device, dtype, embeddings), and the
interface the hybrid calls instead of asking which kind of backbone it holds.

Layouts. The hybrid puts K prefix embeddings (from its TRM) beside the prompt and scores or generates
the answer after both:

    prefix_first  [prefix ; prompt ; answer]   every position of the prompt sees the prefix
    prompt_first  [prompt ; prefix ; answer]   the prompt sees nothing after it (causal LMs only)

In a causal LM the prompt-first prompt positions do not depend on the prefix, so one frozen forward
over the prompt gives both the hidden states the adapter reads and the keys and values (KV) that the
prefix-and-answer forward attends to: the prompt is encoded once per step (or once per run, when its
states are stored) instead of being run forward and backward with the prefix in front. A masked-
diffusion LM attends both ways, so its prompt states depend on the prefix: it keeps prefix_first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hybrid_pipeline.backbones.config import BackboneConfig

LAYOUTS = ("prompt_first", "prefix_first")
IGNORE_INDEX = -100  # Hugging Face's label for "no loss here"


def answer_token_ids(tokenizer: Any, answer: str) -> list[int]:
    """An answer's ids as the LM learns to write it: no special tokens before, EOS after (so it learns to stop)."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return tokenizer(answer, add_special_tokens=False)["input_ids"] + eos


def pad_token_rows(rows: Sequence[Sequence[int]], pad: int, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows as one batch: ids [B,W] padded with `pad` on the left (prompts, so generation goes
    on from the last column) or the right (answers), and the mask [B,W] of real tokens."""
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def until_eos(tokens: torch.Tensor, eos: int | None) -> torch.Tensor:
    """A generated answer [N] up to (not including) its first EOS."""
    if eos is not None and bool((tokens == eos).any()):
        return tokens[:int((tokens == eos).nonzero()[0, 0])]
    return tokens


@dataclass
class PromptStates:
    """A prompt run once through the frozen backbone.

    hidden [B,T,D]: the states at `config.hidden_layer` (what the text->latent adapter reads).
    kv [layers,2,B,H_kv,T,head_dim] or None: every layer's keys and values, for a continuation after
    the prompt (prompt_first; a causal backbone only). One tensor, so it batches, moves between devices
    and stores like the hidden states.
    """

    hidden: torch.Tensor
    kv: torch.Tensor | None = None


class FrozenBackbone(nn.Module):
    """A loaded language model with its tokenizer; weights frozen (requires_grad False, eval mode).

    Subclasses implement the hybrid's four calls: `prompt_states`, `answer_loss`, `generate_answer`
    and `stopping_kwargs`, each for the layouts in `layouts`.
    """

    layouts: tuple[str, ...] = ()  # supported layouts, the default first

    def __init__(self, model: nn.Module, tokenizer, config: BackboneConfig, random_weights: bool):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.random_weights = random_weights

    def train(self, mode: bool = True):
        """Stays in eval mode unless LoRA adapters are there to train."""
        return super().train(mode and self.config.lora)

    @property
    def hidden_size(self) -> int:
        return self.model.config.get_text_config().hidden_size

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings [B,T] -> [B,T,D]."""
        return self.model.get_input_embeddings()(input_ids)

    def check_layout(self, layout: str) -> None:
        if layout not in self.layouts:
            raise ValueError(f"layout {layout!r} is not available for a {self.config.kind} backbone "
                             f"(available: {', '.join(self.layouts)})")

    # ---- the hybrid's interface ------------------------------------------------------------

    def prompt_states(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor | None = None, *,
                      with_kv: bool = False) -> PromptStates:
        """The prompt [B,T] once through the backbone; `with_kv` also keeps its keys and values."""
        raise NotImplementedError

    def answer_loss(self, prefix: torch.Tensor, prompt_ids: torch.Tensor | None, prompt_mask: torch.Tensor | None,
                    answer_ids: torch.Tensor, answer_mask: torch.Tensor, *, layout: str,
                    prompt_kv: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Scalar LM loss on the answer tokens [B,A] with `prefix` [B,K,D] placed as `layout` says;
        gradients reach the prefix (and LoRA weights), never the frozen weights. `prompt_ids` may be
        None where `prompt_kv` stands for the prompt; a None `prompt_mask` attends to every token."""
        raise NotImplementedError

    def generate_answer(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor | None, prefix: torch.Tensor, *,
                        layout: str, max_new_tokens: int, constrain_to_grid: bool = True,
                        prompt_kv: torch.Tensor | None = None, generator: torch.Generator | None = None,
                        block_length: int = 32, diffusion_steps: int | None = None,
                        **generate_kwargs) -> torch.Tensor:
        """New answer tokens [B,N], N <= max_new_tokens, after prompt and prefix placed as `layout` says.
        `block_length` and `diffusion_steps` concern masked diffusion only."""
        raise NotImplementedError

    def stopping_kwargs(self) -> dict:
        """Keyword arguments for `generate_answer` and `sample_answer` that end an answer once more
        tokens cannot change the grid `arc.text.parse_grid` reads (empty where the sampler stops on
        its own)."""
        return {}

    # ---- the answer models' interface (`backbones.answer`): prompts alone, no prefix ----------

    def answer_cache(self, prompt_ids: torch.Tensor):
        """What `sample_answer` reuses across answers to one prompt [1,T]; None where nothing can be."""
        return None

    def sample_answer(self, prompt_ids: torch.Tensor, cache=None, *, temperature: float | None, max_new_tokens: int,
                      seed: int, constrain_to_grid: bool, block_length: int = 32, steps_per_block: int = 16,
                      **generate_kwargs) -> tuple[torch.Tensor, int]:
        """One answer to `prompt_ids` [1,T] (continuing from `cache` when given): its tokens [N] up to
        EOS, and how many tokens were generated. Greedy when `temperature` is None, else sampled,
        reproducibly from `seed`. `block_length` and `steps_per_block` concern masked diffusion,
        `generate_kwargs` causal generation."""
        raise NotImplementedError
