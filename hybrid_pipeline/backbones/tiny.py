"""Offline tiny language models: a character tokenizer and a randomly initialised LLaMA.

Tests and smoke runs need a backbone without downloading weights. The tokenizer is character level
(every printable ASCII character and newline is one token) so ARC grids serialize to one token per
cell exactly as they would with a real tokenizer that keeps digits apart. The same LLaMA serves two
names: `tiny-random` is used causally; `tiny-random-diffusion` is the same network given a 4D
all-true attention mask, which makes it attend both ways like a masked-diffusion LM.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

TINY_CAUSAL = "tiny-random"
TINY_DIFFUSION = "tiny-random-diffusion"
TINY_NAMES = (TINY_CAUSAL, TINY_DIFFUSION)

SPECIAL_TOKENS = ("<s>", "</s>", "<pad>", "<unk>", "<mask>")
# string.printable minus the whitespace other than space, plus newline: 95 printable chars and "\n".
CHARACTERS = tuple(c for c in string.printable if c not in "\t\r\x0b\x0c\n") + ("\n",)


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level tokenizer, built locally: specials first (ids 0..4), then one id per character."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # Each character (newline included, hence [\s\S] rather than ".") is its own pre-token.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])])
    backend.decoder = decoders.Fuse()  # characters join without spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", mask_token="<mask>", padding_side="left")


def build_tiny_llama(tokenizer: PreTrainedTokenizerFast | None = None, *, seed: int = 0, hidden_size: int = 64,
                     num_layers: int = 2, num_heads: int = 4, max_positions: int = 8192,
                     dtype: torch.dtype = torch.float32) -> LlamaForCausalLM:
    """A `LlamaForCausalLM` with random weights drawn from `seed`; vocab sized to `tokenizer`."""
    tokenizer = tokenizer or build_char_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)  # building a tiny model must not reseed the caller
    return model.to(dtype).eval()


def load_tiny(name: str = TINY_CAUSAL, *, seed: int = 0, dtype: torch.dtype = torch.float32
              ) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """(model, tokenizer) for one of `TINY_NAMES`."""
    if name not in TINY_NAMES:
        raise ValueError(f"unknown tiny model '{name}'; expected one of {', '.join(TINY_NAMES)}")
    tokenizer = build_char_tokenizer()
    return build_tiny_llama(tokenizer, seed=seed, dtype=dtype), tokenizer


def save_tiny(directory: str | Path, *, seed: int = 0) -> Path:
    """Write config.json, model.safetensors and tokenizer files, so `from_pretrained(directory)` loads it."""
    directory = Path(directory)
    model, tokenizer = load_tiny(TINY_CAUSAL, seed=seed)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
