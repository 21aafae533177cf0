"""`CausalBackbone`: a frozen Hugging Face causal LM that reads prompts and writes grid answers.

Any `AutoModelForCausalLM` checkpoint works (LLaMA first; Qwen and Mistral load the same way). The
hybrid needs four things from it: hidden states of a prompt (for the text->latent adapter), its token
embeddings, a forward pass with learned prefix embeddings in front of the prompt (grad flows to the
prefix while the weights stay frozen), and generation. A task prompt is long and every attempt shares
it, so `encode_prompt` runs it once and each attempt continues from a copy of its KV cache.

Both layouts of the hybrid (see `base`) are available; prompt_first is the default: the prompt's keys
and values (`prompt_states(..., with_kv=True)`) serve the prefix-and-answer forward in training and
every generated attempt, and can be stored across training steps.
"""

from __future__ import annotations

import copy
import inspect
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList
from transformers.modeling_outputs import CausalLMOutputWithPast

from hybrid_pipeline.arc.text import GRID_ALPHABET
from hybrid_pipeline.backbones.base import IGNORE_INDEX, FrozenBackbone, PromptStates, until_eos
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


@contextmanager
def _seeded(seed: int, device: torch.device):
    """Seed the global RNG that `model.generate` samples from, and restore it afterwards."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def stacked_kv(cache: DynamicCache) -> torch.Tensor:
    """A cache's keys and values as one tensor [layers,2,B,H_kv,T,head_dim] (`PromptStates.kv`)."""
    return torch.stack([torch.stack([layer.keys, layer.values]) for layer in cache.layers])


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

    layouts = ("prompt_first", "prefix_first")

    def __init__(self, model: nn.Module, tokenizer, config: BackboneConfig, random_weights: bool):
        super().__init__(model, tokenizer, config, random_weights)
        self._grid_ids: list[int] | None = None
        # transformers renamed the forward's `past_key_values` to `cache` (5.25 warns on the old name)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # under peft's wrapper
        parameters = inspect.signature(base.forward).parameters
        self._cache_arg = "cache" if "cache" in parameters else "past_key_values"
        # a prompt forward wants states, not the vocabulary logits of every position (T x 128K at LLaMA-3)
        self._one_logit = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}

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
                         output_hidden_states=True, use_cache=False, **self._one_logit)
        return out.hidden_states[self.config.hidden_layer if layer is None else layer]

    def _returned_cache(self, out):
        """The KV cache a forward returned, read under the name this transformers version gives it
        (`cache` since 5.25, which warns on the old `past_key_values`)."""
        return out.cache if self._cache_arg == "cache" else out.past_key_values

    def prompt_states(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor | None = None, *,
                      with_kv: bool = False) -> PromptStates:
        """Hidden states [B,T,D] at `config.hidden_layer` and, `with_kv`, every layer's keys and values
        [layers,2,B,H_kv,T,head_dim], from one forward over the prompt. Grad follows the caller's mode
        (the weights are frozen; with LoRA the states train)."""
        if not with_kv:
            return PromptStates(self.hidden_states(prompt_ids, prompt_mask))
        position_ids = None if prompt_mask is None else positions(prompt_mask)
        out = self.model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=position_ids,
                         output_hidden_states=True, use_cache=True, **self._one_logit)
        return PromptStates(out.hidden_states[self.config.hidden_layer], stacked_kv(self._returned_cache(out)))

    def extend_prompt_states(self, states: PromptStates, prompt_mask: torch.Tensor | None, more_ids: torch.Tensor,
                             more_mask: torch.Tensor | None = None) -> PromptStates:
        """The states of `[prompt ; more_ids]` from the prompt's (`prompt_states(..., with_kv=True)`):
        only the T' new tokens [B,T'] run; hidden [B,T+T',D] and keys and values of T+T' positions
        equal those of one forward over the whole (float rounding aside). A task prompt encoded once
        serves every attempt whose prompt adds text after it (the verifier's feedback)."""
        if states.kv is None:
            raise ValueError("extend_prompt_states needs the prompt's keys and values (prompt_states with_kv=True)")
        out = self.forward_after_prompt(states.kv, prompt_mask, self.embed(more_ids), more_mask,
                                        output_hidden_states=True, **self._one_logit)
        hidden = torch.cat([states.hidden, out.hidden_states[self.config.hidden_layer]], dim=1)
        return PromptStates(hidden, stacked_kv(self._returned_cache(out)))

    def kv_cache(self, kv: torch.Tensor) -> DynamicCache:
        """A fresh `DynamicCache` over stored keys and values [layers,2,B,H_kv,T,head_dim]: a forward
        appends to the cache, never to `kv`, so one `kv` serves any number of continuations."""
        return DynamicCache(ddp_cache_data=[(layer[0], layer[1]) for layer in kv], config=self.model.config)

    def forward_after_prompt(self, prompt_kv: torch.Tensor, prompt_mask: torch.Tensor | None,
                             inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                             labels: torch.Tensor | None = None, **model_kwargs) -> CausalLMOutputWithPast:
        """Run the LM on `inputs_embeds` [B,S,D] placed after a prompt of which only the keys and values
        are given; logits [B,S,V] equal those of one forward over `[prompt ; inputs]` (float rounding
        aside). `labels` [B,S] align with `inputs_embeds`; the model shifts them. The output's cache
        holds the keys and values of all T+S positions."""
        B, S = inputs_embeds.shape[:2]
        T = prompt_kv.shape[4]
        if prompt_mask is None:
            prompt_mask = torch.ones(B, T, dtype=torch.long, device=inputs_embeds.device)
        new_mask = attention_mask if attention_mask is not None else prompt_mask.new_ones(B, S)
        mask = torch.cat([prompt_mask, new_mask.to(prompt_mask.dtype)], dim=1)  # [B,T+S]
        return self.model(inputs_embeds=inputs_embeds.to(self.dtype), attention_mask=mask,
                          position_ids=positions(mask)[:, T:], labels=labels, use_cache=True,
                          **{self._cache_arg: self.kv_cache(prompt_kv)}, **model_kwargs)

    def answer_loss(self, prefix: torch.Tensor, prompt_ids: torch.Tensor | None, prompt_mask: torch.Tensor | None,
                    answer_ids: torch.Tensor, answer_mask: torch.Tensor, *, layout: str,
                    prompt_kv: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean next-token cross-entropy over the answer tokens (right padding not scored).

        prefix_first runs `[prefix ; prompt ; answer]`; prompt_first runs `[prefix ; answer]` after
        the prompt's keys and values (`prompt_kv`, computed here when not given). `generator` is unused:
        the causal loss draws nothing."""
        self.check_layout(layout)
        answer_labels = answer_ids.masked_fill(~answer_mask.bool(), IGNORE_INDEX)  # [B,A]
        if layout == "prefix_first":
            if prompt_mask is None:
                prompt_mask = torch.ones_like(prompt_ids)
            ids = torch.cat([prompt_ids, answer_ids], dim=1)  # [B,T+A]
            mask = torch.cat([prompt_mask, answer_mask.to(prompt_mask.dtype)], dim=1)
            labels = torch.cat([torch.full_like(prompt_ids, IGNORE_INDEX), answer_labels], dim=1)
            return self.forward_with_prefix(prefix, ids, mask, labels=labels).loss
        if prompt_kv is None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.lora):
                prompt_kv = self.prompt_states(prompt_ids, prompt_mask, with_kv=True).kv
        K = prefix.shape[1]
        embeds = torch.cat([prefix.to(self.dtype), self.embed(answer_ids)], dim=1)  # [B,K+A,D]
        mask = torch.cat([answer_mask.new_ones(answer_mask.shape[0], K), answer_mask], dim=1)
        labels = torch.cat([answer_labels.new_full((answer_labels.shape[0], K), IGNORE_INDEX), answer_labels], dim=1)
        return self.forward_after_prompt(prompt_kv, prompt_mask, embeds, mask, labels=labels).loss

    def cache_after_prompt(self, prompt_kv: torch.Tensor, prompt_ids: torch.Tensor,
                           prompt_mask: torch.Tensor | None, prefix_embeds: torch.Tensor) -> PromptCache:
        """A `PromptCache` for `[prompt ; prefix]` whose prompt is already encoded (`prompt_kv`): only
        the K prefix positions are left for `generate` to run."""
        embeds = self.embed(prompt_ids)
        if prompt_mask is None:
            prompt_mask = torch.ones_like(prompt_ids)
        inputs_embeds = torch.cat([embeds, prefix_embeds.to(embeds.dtype)], dim=1)  # [B,T+K,D]
        mask = torch.cat([prompt_mask, prompt_mask.new_ones(prefix_embeds.shape[:2])], dim=1)
        return PromptCache(self.kv_cache(prompt_kv), inputs_embeds, mask)

    @torch.no_grad()
    def generate_answer(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor | None, prefix: torch.Tensor, *,
                        layout: str, max_new_tokens: int, constrain_to_grid: bool = True,
                        prompt_kv: torch.Tensor | None = None, generator: torch.Generator | None = None,
                        block_length: int = 32, diffusion_steps: int | None = None,
                        **generate_kwargs) -> torch.Tensor:
        """Greedy (unless `generate_kwargs` say otherwise) generation after prompt and prefix; with
        prompt_first the prompt's keys and values (`prompt_kv`, computed here when not given) are reused."""
        self.check_layout(layout)
        if layout == "prefix_first":
            return self.generate(prompt_ids, prefix, attention_mask=prompt_mask, max_new_tokens=max_new_tokens,
                                 constrain_to_grid=constrain_to_grid, **generate_kwargs)
        if prompt_kv is None:
            prompt_kv = self.prompt_states(prompt_ids, prompt_mask, with_kv=True).kv
        cache = self.cache_after_prompt(prompt_kv, prompt_ids, prompt_mask, prefix)
        return self.generate(prompt_cache=cache, max_new_tokens=max_new_tokens, constrain_to_grid=constrain_to_grid,
                             **generate_kwargs)

    def stopping_kwargs(self) -> dict:
        """Stop once more tokens cannot change the parsed grid (an untrained LM otherwise writes a whole
        30x31 canvas every time)."""
        from transformers import StoppingCriteriaList

        from hybrid_pipeline.backbones.answer import grid_end_stop

        return {"stopping_criteria": StoppingCriteriaList([grid_end_stop(self.tokenizer)])}

    def answer_cache(self, prompt_ids: torch.Tensor) -> PromptCache:
        """The prompt encoded once; every answer continues from a copy of its KV cache."""
        return self.encode_prompt(prompt_ids)

    def sample_answer(self, prompt_ids: torch.Tensor, cache: PromptCache | None = None, *, temperature: float | None,
                      max_new_tokens: int, seed: int, constrain_to_grid: bool, block_length: int = 32,
                      steps_per_block: int = 16, **generate_kwargs) -> tuple[torch.Tensor, int]:
        """`generate` after the prompt (or its cache), greedy or sampled from `seed`; `generate_kwargs`
        go to `model.generate`. The block settings are the diffusion sampler's."""
        if temperature is not None:
            generate_kwargs.update(do_sample=True, temperature=temperature)
        source = {"prompt_cache": cache} if cache is not None else {"prompt_ids": prompt_ids}
        with _seeded(seed, prompt_ids.device) if temperature is not None else nullcontext():
            out = self.generate(**source, max_new_tokens=max_new_tokens, constrain_to_grid=constrain_to_grid,
                                **generate_kwargs)  # [1,N]
        return until_eos(out[0], self.tokenizer.eos_token_id), out.shape[1]

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
                   position_ids=positions(mask[:, :-1]), use_cache=True, **{self._cache_arg: cache}, **self._one_logit)
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
