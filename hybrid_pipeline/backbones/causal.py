"""`CausalBackbone`: a frozen Hugging Face causal LM that reads prompts and writes grid answers.

Any `AutoModelForCausalLM` checkpoint works (LLaMA first; Qwen and Mistral load the same way). The
hybrid needs four things from it: hidden states of a prompt (for the text->latent adapter), its token
embeddings, a forward pass with learned prefix embeddings in front of the prompt (grad flows to the
prefix while the weights stay frozen), and generation. A task prompt is long and every attempt shares
it, so `encode_prompt` runs it once and each attempt continues from a copy of its KV cache.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList
from transformers.modeling_outputs import CausalLMOutputWithPast

from hybrid_pipeline.arc.text import GRID_ALPHABET
from hybrid_pipeline.backbones.base import FrozenBackbone
from hybrid_pipeline.backbones.config import BackboneConfig
from hybrid_pipeline.backbones.loading import load_model


def grid_alphabet_ids(tokenizer) -> list[int]:
    """Token ids of the digits 0-9 and newline, plus EOS; fails if a character has no token of its own.

    Sentencepiece tokenizers put a word-start piece in front of a lone character, so the last id of
    its encoding is the character's own token; decoding it back confirms that.
    """
    ids = []
    for char in GRID_ALPHABET:
        token = tokenizer.encode(char, add_special_tokens=False)[-1]
        if tokenizer.decode([token]).strip(" ") != char and not (char == "\n" and "\n" in tokenizer.decode([token])):
            raise ValueError(f"tokenizer {type(tokenizer).__name__} has no single token for {char!r}; "
                             "grid-constrained generation needs one per digit and for newline")
        ids.append(token)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return sorted(set(ids))


class AllowedTokensLogitsProcessor(LogitsProcessor):
    """Sets every score outside `allowed_ids` to -inf, so only those tokens can be chosen."""

    def __init__(self, allowed_ids: list[int]):
        self.allowed_ids = torch.tensor(allowed_ids, dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        allowed = self.allowed_ids.to(scores.device)
        masked = torch.full_like(scores, float("-inf"))
        masked[:, allowed] = scores[:, allowed]
        return masked


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids [B,T] that skip padding, as `generate` counts them: a left-padded row then sees
    the same positions in training, in a cached prompt and in generation as it would unpadded."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@dataclass
class PromptCache:
    """A prompt encoded once: the KV cache of all its positions but the last, and the inputs to continue.

    The last position stays out of the cache because `generate` needs at least one new input to
    produce the first answer token's logits.
    """
    past_key_values: DynamicCache
    inputs_embeds: torch.Tensor   # [B, K+T, D]: prefix and prompt embeddings
    attention_mask: torch.Tensor  # [B, K+T]


class CausalBackbone(FrozenBackbone):
    """A frozen causal LM (weights requires_grad False, eval mode) with optional LoRA adapters."""

    def __init__(self, model: nn.Module, tokenizer, config: BackboneConfig, random_weights: bool):
        super().__init__(model, tokenizer, config, random_weights)
        self._grid_ids: list[int] | None = None

    @classmethod
    def from_config(cls, config: BackboneConfig) -> "CausalBackbone":
        from transformers import AutoModelForCausalLM

        loaded = load_model(config, (AutoModelForCausalLM,))
        return cls(loaded.model, loaded.tokenizer, config, loaded.random_weights)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      layer: int | None = None) -> torch.Tensor:
        """Hidden states [B,T] -> [B,T,D] of `layer` (default `config.hidden_layer`; 0 is the embeddings)."""
        position_ids = None if attention_mask is None else positions(attention_mask)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         output_hidden_states=True, use_cache=False)
        return out.hidden_states[self.config.hidden_layer if layer is None else layer]

    def _with_prefix(self, prefix_embeds: torch.Tensor | None, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs_embeds [B,K+T,D] and attention mask [B,K+T] for `[prefix ; tokens]`."""
        embeds = self.embed(input_ids)  # [B,T,D]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if prefix_embeds is None:
            return embeds, attention_mask
        if prefix_embeds.shape[-1] != embeds.shape[-1]:
            raise ValueError(f"prefix width {prefix_embeds.shape[-1]} does not match the backbone's hidden "
                             f"size {embeds.shape[-1]}")
        prefix_embeds = prefix_embeds.to(embeds.dtype)
        prefix_mask = attention_mask.new_ones(prefix_embeds.shape[:2])
        return torch.cat([prefix_embeds, embeds], dim=1), torch.cat([prefix_mask, attention_mask], dim=1)

    def forward_with_prefix(self, prefix_embeds: torch.Tensor | None, input_ids: torch.Tensor,
                            attention_mask: torch.Tensor | None = None,
                            labels: torch.Tensor | None = None) -> CausalLMOutputWithPast:
        """Run the LM on `[prefix [B,K,D] ; embed(input_ids) [B,T,D]]`; logits are [B,K+T,V].

        `labels` [B,T] align with `input_ids` (-100 on prompt tokens, so the loss covers the answer
        only); the prefix positions get -100 here. The model shifts labels for next-token loss.
        Gradients reach `prefix_embeds` through `inputs_embeds` whether or not the weights train.
        """
        inputs_embeds, mask = self._with_prefix(prefix_embeds, input_ids, attention_mask)
        if labels is not None and prefix_embeds is not None:
            ignore = labels.new_full(prefix_embeds.shape[:2], -100)
            labels = torch.cat([ignore, labels], dim=1)  # [B,K+T]
        return self.model(inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=positions(mask),
                          labels=labels, use_cache=False)

    @torch.no_grad()
    def encode_prompt(self, prompt_ids: torch.Tensor, prefix_embeds: torch.Tensor | None = None,
                      attention_mask: torch.Tensor | None = None) -> PromptCache:
        """Encode `[prefix ; prompt]` once; pass the result to `generate(prompt_cache=...)` per attempt."""
        inputs_embeds, mask = self._with_prefix(prefix_embeds, prompt_ids, attention_mask)
        cache = DynamicCache(config=self.model.config)
        self.model(inputs_embeds=inputs_embeds[:, :-1], attention_mask=mask[:, :-1],
                   position_ids=positions(mask[:, :-1]), cache=cache, use_cache=True)
        return PromptCache(cache, inputs_embeds, mask)

    def grid_logits_processor(self) -> AllowedTokensLogitsProcessor:
        if self._grid_ids is None:
            self._grid_ids = grid_alphabet_ids(self.tokenizer)
        return AllowedTokensLogitsProcessor(self._grid_ids)

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor | None = None, prefix_embeds: torch.Tensor | None = None, *,
                 attention_mask: torch.Tensor | None = None, max_new_tokens: int = 64,
                 constrain_to_grid: bool = False, prompt_cache: PromptCache | None = None,
                 **generate_kwargs) -> torch.Tensor:
        """New tokens [B,N] (N <= max_new_tokens) after `[prefix ; prompt]`, or after `prompt_cache`.

        With `prompt_cache` the prompt is not re-encoded: generation continues from a deep copy of
        its KV cache, so the same cache serves any number of attempts. `constrain_to_grid` allows
        only digits, newline and EOS. Other keyword arguments go to `model.generate` (do_sample,
        temperature, ...); greedy by default.
        """
        if prompt_cache is not None:
            if prompt_ids is not None or prefix_embeds is not None:
                raise ValueError("pass either prompt_cache or prompt_ids/prefix_embeds, not both")
            inputs_embeds, mask = prompt_cache.inputs_embeds, prompt_cache.attention_mask
            generate_kwargs["cache"] = copy.deepcopy(prompt_cache.past_key_values)
        elif prompt_ids is None:
            raise ValueError("generate needs prompt_ids or a prompt_cache")
        else:
            inputs_embeds, mask = self._with_prefix(prefix_embeds, prompt_ids, attention_mask)
        processors = LogitsProcessorList(generate_kwargs.pop("logits_processor", []))
        if constrain_to_grid:
            processors.append(self.grid_logits_processor())
        generate_kwargs.setdefault("do_sample", False)
        return self.model.generate(inputs_embeds=inputs_embeds, attention_mask=mask, max_new_tokens=max_new_tokens,
                                   logits_processor=processors, pad_token_id=self.tokenizer.pad_token_id,
                                   eos_token_id=self.tokenizer.eos_token_id, **generate_kwargs)
