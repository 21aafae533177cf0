"""`DiffusionBackbone`: a frozen masked-diffusion LM (LLaDA style) that fills an answer by unmasking.

A masked-diffusion LM predicts every masked position at once with bidirectional attention, so its
loss is taken at the masked positions themselves (no causal shift) and weighted by 1/t, the masking
ratio, as in LLaDA. Sampling follows LLaDA's semi-autoregressive scheme: the answer starts fully
masked and is filled block by block; each step commits the most confident predictions of the
current block and leaves the rest masked. Between prediction and commit, an optional refine hook
sees the hidden states of answer chunks whose confidence is low and may return new prefix
embeddings, with which the step is predicted again (selective refinement).

LLaDA itself is remote code (`trust_remote_code`, mask id 126336, bidirectional by construction);
offline tests use the tiny LLaMA made bidirectional by a 4D all-true attention mask.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hybrid_pipeline.backbones.base import FrozenBackbone, PromptStates, until_eos
from hybrid_pipeline.backbones.causal import grid_alphabet_ids
from hybrid_pipeline.backbones.config import BackboneConfig, BackboneLoadError
from hybrid_pipeline.backbones.loading import load_model

# refine_hook(chunk_hidden [B,C,S,D], chunk_confidence [B,C], low_confidence [B,C] bool)
#   -> new prefix embeddings [B,K,D] to predict the step again with, or None to only observe.
RefineHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], "torch.Tensor | None"]


@dataclass
class DiffusionLoss:
    loss: torch.Tensor        # scalar
    noise_mask: torch.Tensor  # [B,T] bool: positions replaced by the mask token
    p_mask: torch.Tensor      # [B] masking probability per sequence


@dataclass
class DiffusionSample:
    tokens: torch.Tensor              # [B,G] generated answer, no mask tokens
    sampled: int                      # answer positions sampled; after them (early stop) the stop token
    sequences: torch.Tensor           # [B,P+G] prompt followed by the answer
    chunk_confidence: torch.Tensor    # [B,C] mean probability of each chunk's tokens at the last step
    confidence_history: torch.Tensor  # [steps,B,C] the same at every step (committed or proposed tokens)
    steps: int                        # denoising steps taken
    refine_calls: int                 # steps at which the refine hook ran
    refined_chunks: int               # low-confidence chunks shown to the hook, summed over calls


def masked_diffusion_loss(logits: torch.Tensor, targets: torch.Tensor, noise_mask: torch.Tensor,
                          p_mask: torch.Tensor, num_eligible: torch.Tensor) -> torch.Tensor:
    """LLaDA's loss: cross-entropy at masked positions only, each divided by its sequence's mask
    probability and by the number of positions that could have been masked, averaged over the batch.

    logits [B,T,V] predict the token at the same position (no shift); targets, noise_mask [B,T];
    p_mask, num_eligible [B].
    """
    B, T = targets.shape
    weight = (1.0 / (p_mask * num_eligible.clamp(min=1)))[:, None].expand(B, T)  # [B,T]
    token_loss = F.cross_entropy(logits[noise_mask].float(), targets[noise_mask], reduction="none")  # [N]
    return (token_loss * weight[noise_mask]).sum() / B


def transfer_schedule(masked_count: torch.Tensor, steps: int) -> torch.Tensor:
    """How many tokens to unmask at each of `steps` steps [B,steps], spreading `masked_count` [B]
    as evenly as possible (earlier steps take the remainder), as LLaDA's sampler does."""
    base = masked_count // steps
    remainder = masked_count % steps
    step_index = torch.arange(steps, device=masked_count.device)
    return base[:, None] + (step_index[None, :] < remainder[:, None]).long()


class DiffusionBackbone(FrozenBackbone):
    """A frozen masked-diffusion LM; `logits(x)` sees the whole sequence both ways."""

    layouts = ("prefix_first",)  # the prompt's states depend on the prefix: nothing to reuse

    def __init__(self, model: nn.Module, tokenizer, config: BackboneConfig, random_weights: bool):
        super().__init__(model, tokenizer, config, random_weights)
        mask_id = config.mask_token_id if config.mask_token_id is not None else tokenizer.mask_token_id
        if mask_id is None:
            raise BackboneLoadError(f"backbone '{config.name_or_path}': tokenizer has no mask token; set "
                                    "mask_token_id (LLaDA uses 126336)")
        self.mask_token_id = int(mask_id)
        self.bidirectional_mask = (not config.trust_remote_code if config.bidirectional_mask is None
                                   else config.bidirectional_mask)
        parameters = inspect.signature(model.forward).parameters
        # LLaDA's remote model names the argument `input_embeddings`; transformers models `inputs_embeds`.
        self._embeds_arg = "inputs_embeds" if "inputs_embeds" in parameters else "input_embeddings"

    @classmethod
    def from_config(cls, config: BackboneConfig) -> "DiffusionBackbone":
        from transformers import AutoModel, AutoModelForCausalLM

        classes = (AutoModel, AutoModelForCausalLM) if config.trust_remote_code else (AutoModelForCausalLM,)
        loaded = load_model(config, classes)
        backbone = cls(loaded.model, loaded.tokenizer, config, loaded.random_weights)
        backbone._check_lm_head()
        return backbone

    def _check_lm_head(self) -> None:
        """A model class without an LM head returns no logits: refuse it rather than add a random one."""
        probe = torch.tensor([[self.mask_token_id]], device=self.device)
        with torch.no_grad():
            out = self.model(input_ids=probe)
        if getattr(out, "logits", None) is None:
            raise BackboneLoadError(f"backbone '{self.config.name_or_path}': loaded class "
                                    f"{type(self.model).__name__} returns no logits (no LM head)")

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      layer: int | None = None) -> torch.Tensor:
        """Hidden states [B,T] -> [B,T,D] of `layer` (default `config.hidden_layer`; 0 is the embeddings),
        every position attending to every other."""
        out, _ = self._run(input_ids, None, attention_mask, output_hidden_states=True)
        return out.hidden_states[self.config.hidden_layer if layer is None else layer]

    def prompt_states(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor | None = None, *,
                      with_kv: bool = False) -> PromptStates:
        """Hidden states of the prompt alone. No keys and values: attention goes both ways, so they
        change with whatever follows the prompt and cannot be reused."""
        if with_kv:
            raise ValueError("a masked-diffusion backbone has no reusable prompt keys and values (its attention "
                             "goes both ways); use layout prefix_first")
        return PromptStates(self.hidden_states(prompt_ids, prompt_mask))

    def answer_loss(self, prefix: torch.Tensor, prompt_ids: torch.Tensor | None, prompt_mask: torch.Tensor | None,
                    answer_ids: torch.Tensor, answer_mask: torch.Tensor, *, layout: str,
                    prompt_kv: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """`diffusion_loss` over `[prefix ; prompt ; answer]` where only answer tokens may be masked,
        each scored at its own position."""
        self.check_layout(layout)
        if prompt_mask is None:
            prompt_mask = torch.ones_like(prompt_ids)
        ids = torch.cat([prompt_ids, answer_ids], dim=1)  # [B,T+A]
        mask = torch.cat([prompt_mask, answer_mask.to(prompt_mask.dtype)], dim=1)
        eligible = torch.cat([torch.zeros_like(prompt_ids, dtype=torch.bool), answer_mask.bool()], dim=1)
        return self.diffusion_loss(ids, answer_mask=eligible, prefix_embeds=prefix, attention_mask=mask,
                                   generator=generator).loss

    @torch.no_grad()
    def generate_answer(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor | None, prefix: torch.Tensor, *,
                        layout: str, max_new_tokens: int, constrain_to_grid: bool = True,
                        prompt_kv: torch.Tensor | None = None, generator: torch.Generator | None = None,
                        block_length: int = 32, diffusion_steps: int | None = None,
                        **generate_kwargs) -> torch.Tensor:
        """`generate` of `max_new_tokens` rounded up to whole blocks, in `diffusion_steps` steps (default
        one per position), stopping at EOS; the first `max_new_tokens` tokens [B,N]."""
        self.check_layout(layout)
        gen_length = -(-max_new_tokens // block_length) * block_length
        eos = self.tokenizer.eos_token_id  # the answer is cut there: later blocks need no sampling
        generate_kwargs = {"stop_token_ids": None if eos is None else [eos], **generate_kwargs}
        sample = self.generate(prompt_ids, prefix, attention_mask=prompt_mask, gen_length=gen_length,
                               block_length=block_length, steps=diffusion_steps or gen_length,
                               constrain_to_grid=constrain_to_grid, generator=generator, **generate_kwargs)
        return sample.tokens[:, :max_new_tokens]  # the block rounding added positions nobody asked for

    def sample_answer(self, prompt_ids: torch.Tensor, cache=None, *, temperature: float | None, max_new_tokens: int,
                      seed: int, constrain_to_grid: bool, block_length: int = 32, steps_per_block: int = 16,
                      **generate_kwargs) -> tuple[torch.Tensor, int]:
        """`generate` of `max_new_tokens` rounded up to whole blocks, `steps_per_block` steps each, with
        a generator seeded from `seed`, stopping at EOS (LLaDA pads answers with it). No cache: attention
        goes both ways, so the prompt's keys and values change as the answer fills in. Counts the
        positions sampled. `generate_kwargs` are causal generation's and do not apply."""
        gen_length = -(-max_new_tokens // block_length) * block_length  # the sampler fills whole blocks
        generator = torch.Generator(device=prompt_ids.device).manual_seed(seed)
        eos = self.tokenizer.eos_token_id
        sample = self.generate(prompt_ids, gen_length=gen_length, block_length=block_length,
                               steps=gen_length // block_length * steps_per_block, temperature=temperature or 0.0,
                               constrain_to_grid=constrain_to_grid, generator=generator,
                               stop_token_ids=None if eos is None else [eos])
        return until_eos(sample.tokens[0], eos), sample.sampled

    def forward(self, input_ids: torch.Tensor, prefix_embeds: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, output_hidden_states: bool = False):
        """(logits [B,T,V], last hidden states [B,T,D] or None) for `[prefix ; input_ids]`; the prefix
        positions are dropped from both outputs."""
        out, K = self._run(input_ids, prefix_embeds, attention_mask, output_hidden_states)
        hidden = out.hidden_states[-1][:, K:] if output_hidden_states else None
        return out.logits[:, K:], hidden

    def _run(self, input_ids: torch.Tensor, prefix_embeds: torch.Tensor | None,
             attention_mask: torch.Tensor | None, output_hidden_states: bool):
        """The model's raw output for `[prefix ; input_ids]` and the prefix length K."""
        B, T = input_ids.shape
        K = 0 if prefix_embeds is None else prefix_embeds.shape[1]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs: dict = {"output_hidden_states": output_hidden_states}
        if prefix_embeds is None:
            kwargs["input_ids"] = input_ids
        else:
            embeds = self.embed(input_ids)
            kwargs[self._embeds_arg] = torch.cat([prefix_embeds.to(embeds.dtype), embeds], dim=1)  # [B,K+T,D]
            attention_mask = torch.cat([attention_mask.new_ones(B, K), attention_mask], dim=1)  # [B,K+T]
        if self.bidirectional_mask:
            S = K + T
            kwargs["attention_mask"] = attention_mask.bool()[:, None, None, :].expand(B, 1, S, S)  # every query sees every key
        elif not bool(attention_mask.all()):
            kwargs["attention_mask"] = attention_mask
        return self.model(**kwargs), K

    def diffusion_loss(self, input_ids: torch.Tensor, *, answer_mask: torch.Tensor | None = None,
                       prefix_embeds: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                       t: torch.Tensor | None = None, generator: torch.Generator | None = None,
                       eps: float = 1e-3) -> DiffusionLoss:
        """Mask each eligible token with probability p = (1-eps) t + eps, t ~ U(0,1) per sequence
        (or given, [B]), and score the predictions at the masked positions.

        Eligible positions are `answer_mask` [B,T] (supervised fine-tuning: the prompt stays clean)
        or, without it, every attended position (pre-training).
        """
        B, T = input_ids.shape
        device = input_ids.device
        eligible = (answer_mask if answer_mask is not None else
                    attention_mask if attention_mask is not None else torch.ones_like(input_ids)).bool()
        if t is None:
            t = torch.rand(B, device=device, generator=generator)
        p_mask = (1 - eps) * t + eps  # [B]
        noise_mask = (torch.rand(B, T, device=device, generator=generator) < p_mask[:, None]) & eligible
        noisy = torch.where(noise_mask, torch.full_like(input_ids, self.mask_token_id), input_ids)
        logits, _ = self(noisy, prefix_embeds, attention_mask)
        loss = masked_diffusion_loss(logits, input_ids, noise_mask, p_mask, eligible.sum(dim=1))
        return DiffusionLoss(loss, noise_mask, p_mask)

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor, prefix_embeds: torch.Tensor | None = None, *,
                 attention_mask: torch.Tensor | None = None, gen_length: int = 128, block_length: int = 32,
                 steps: int = 128, temperature: float = 0.0, remasking: str = "low_confidence",
                 constrain_to_grid: bool = False, generator: torch.Generator | None = None,
                 refine_hook: RefineHook | None = None, refine_threshold: float = 0.5,
                 chunk_length: int | None = None, stop_token_ids: Sequence[int] | None = None) -> DiffusionSample:
        """Fill `gen_length` masked positions after `prompt_ids` [B,P], `block_length` at a time,
        over `steps` steps in all (divided evenly among blocks).

        Each step predicts every masked position (Gumbel-max sampling at `temperature`, argmax at 0),
        then commits in the current block the `remasking` choice of tokens: the most confident
        ("low_confidence" remasking keeps the least confident masked) or random ones. Answer chunks
        of `chunk_length` tokens (default `block_length`) are scored by the mean probability of
        their current tokens; those in the current block that still hold masks and score below
        `refine_threshold` go to `refine_hook` before the commit.

        `stop_token_ids` (e.g. EOS): once every sequence holds one of them in its finished blocks,
        the later blocks are not sampled and hold `stop_token_ids[0]` (LLaDA pads answers with EOS).
        Committed tokens never change, so each sequence's tokens up to its first stop token are the
        ones a full run gives; only the cost differs.
        """
        if gen_length % block_length:
            raise ValueError(f"gen_length {gen_length} is not a multiple of block_length {block_length}")
        num_blocks = gen_length // block_length
        if steps % num_blocks:
            raise ValueError(f"steps {steps} is not a multiple of the number of blocks {num_blocks}")
        if remasking not in ("low_confidence", "random"):
            raise ValueError(f"remasking should be 'low_confidence' or 'random', got '{remasking}'")
        chunk_length = chunk_length or block_length
        if gen_length % chunk_length:
            raise ValueError(f"gen_length {gen_length} is not a multiple of chunk_length {chunk_length}")
        steps_per_block = steps // num_blocks
        B, P = prompt_ids.shape
        device = prompt_ids.device
        C = gen_length // chunk_length
        x = torch.cat([prompt_ids, prompt_ids.new_full((B, gen_length), self.mask_token_id)], dim=1)  # [B,P+G]
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(B, gen_length)], dim=1)
        banned = torch.ones(self._vocab_size(), dtype=torch.bool, device=device)
        if constrain_to_grid:
            banned[grid_alphabet_ids(self.tokenizer)] = False
        else:
            banned[:] = False
        banned[self.mask_token_id] = True  # a committed token is never the mask itself
        stops = None if not stop_token_ids else torch.tensor(list(stop_token_ids), device=device)
        history, refine_calls, refined_chunks, sampled = [], 0, 0, gen_length
        for block in range(num_blocks):
            start, end = P + block * block_length, P + (block + 1) * block_length
            schedule = transfer_schedule((x[:, start:end] == self.mask_token_id).sum(dim=1), steps_per_block)
            chunk_index = torch.arange(C, device=device)
            in_block = (chunk_index >= (start - P) // chunk_length) & (chunk_index <= (end - P - 1) // chunk_length)
            for step in range(steps_per_block):
                masked = x == self.mask_token_id  # [B,P+G]
                x0, x0_prob, chunk_conf, hidden = self._predict(x, prefix_embeds, attention_mask, banned,
                                                                temperature, generator, masked, P, C,
                                                                refine_hook is not None)
                if refine_hook is not None:
                    has_mask = masked[:, P:].reshape(B, C, chunk_length).any(dim=-1)  # [B,C]
                    low = (chunk_conf < refine_threshold) & has_mask & in_block[None, :]
                    if low.any():
                        chunk_hidden = hidden[:, P:].reshape(B, C, chunk_length, -1)  # [B,C,S,D]
                        new_prefix = refine_hook(chunk_hidden, chunk_conf, low)
                        refine_calls += 1
                        refined_chunks += int(low.sum())
                        if new_prefix is not None:
                            prefix_embeds = new_prefix
                            x0, x0_prob, chunk_conf, _ = self._predict(x, prefix_embeds, attention_mask, banned,
                                                                       temperature, generator, masked, P, C,
                                                                       False)
                if remasking == "random":
                    x0_prob = torch.rand(x0_prob.shape, device=device, generator=generator)
                confidence = torch.where(masked, x0_prob, -torch.inf)
                confidence[:, end:] = -torch.inf  # later blocks wait their turn
                commit = torch.zeros_like(masked)
                for b in range(B):
                    count = int(schedule[b, step])
                    if count:
                        commit[b, confidence[b].topk(count).indices] = True
                x = torch.where(commit, x0, x)
                history.append(chunk_conf)
            if stops is not None and block < num_blocks - 1 and bool(torch.isin(x[:, P:end], stops).any(dim=1).all()):
                sampled = end - P
                x[:, end:] = stops[0]
                break
        return DiffusionSample(tokens=x[:, P:], sampled=sampled, sequences=x, chunk_confidence=history[-1],
                               confidence_history=torch.stack(history), steps=len(history),
                               refine_calls=refine_calls, refined_chunks=refined_chunks)

    def _vocab_size(self) -> int:
        return self.model.get_input_embeddings().weight.shape[0]

    def _predict(self, x, prefix_embeds, attention_mask, banned, temperature, generator, masked, P, C,
                 want_hidden):
        """One prediction over the sequence: proposed tokens x0 [B,S], their probability [B,S],
        chunk confidence [B,C], and last hidden states [B,S,D] when asked."""
        logits, hidden = self(x, prefix_embeds, attention_mask, output_hidden_states=want_hidden)
        logits = logits.float().masked_fill(banned, -torch.inf)  # [B,S,V]
        if temperature > 0:
            uniform = torch.rand(logits.shape, device=logits.device, generator=generator).clamp_(1e-20, 1.0)
            x0 = (logits / temperature - torch.log(-torch.log(uniform))).argmax(dim=-1)  # Gumbel-max sample
        else:
            x0 = logits.argmax(dim=-1)
        probs = logits.softmax(dim=-1)
        x0_prob = probs.gather(-1, x0[..., None]).squeeze(-1)  # [B,S]
        current = torch.where(masked, x0, x)
        current_prob = probs.gather(-1, current[..., None]).squeeze(-1)
        B, G = current_prob[:, P:].shape
        chunk_conf = current_prob[:, P:].reshape(B, C, G // C).mean(dim=-1)  # [B,C]
        return x0, x0_prob, chunk_conf, hidden
