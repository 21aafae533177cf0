"""`TextToLatentAdapter`: language-model hidden states -> the TRM's initial latents z_H and z_L.

The prompt is a variable-length token sequence; the TRM wants one latent per grid cell. The adapter
compresses the token states (Linear, GELU, LayerNorm), then fills L learned grid-position queries
with what the prompt says: a masked mean of the tokens added to every position, and/or cross
attention from each position to the tokens, so different cells can read different parts of the
prompt. A final projection gives 2*D per position, split into z_H and z_L.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn


@dataclass
class TextToLatentConfig:
    llm_hidden: int = 4096
    trm_hidden: int = 512
    num_positions: int = 900
    compress_dim: int = 1024
    mean_pool: bool = True
    cross_attention: bool = True
    num_heads: int = 8

    def __post_init__(self):
        if not (self.mean_pool or self.cross_attention):
            raise ValueError("TextToLatentConfig needs mean_pool or cross_attention (or both)")
        if self.cross_attention and self.compress_dim % self.num_heads:
            raise ValueError(f"compress_dim {self.compress_dim} is not divisible by num_heads {self.num_heads}")


def check_width(expected: int, actual: int, what: str) -> None:
    """Raise a ValueError naming both widths when an adapter meets a model of another width."""
    if expected != actual:
        raise ValueError(f"{what}: adapter built for width {expected}, got width {actual}; rebuild the adapter "
                         f"with {actual} or use a model of width {expected}")


class TextToLatentAdapter(nn.Module):
    """hidden [B,T,D_llm] (+ mask [B,T]) -> (z_H, z_L), each [B,L,D]."""

    def __init__(self, config: TextToLatentConfig | None = None, **overrides):
        super().__init__()
        config = replace(config or TextToLatentConfig(), **overrides)
        self.config = config
        C = config.compress_dim
        self.compress = nn.Sequential(nn.Linear(config.llm_hidden, C), nn.GELU(), nn.LayerNorm(C))
        self.positions = nn.Parameter(torch.randn(config.num_positions, C) * 0.02)
        self.attention = nn.MultiheadAttention(C, config.num_heads, batch_first=True) if config.cross_attention else None
        self.norm = nn.LayerNorm(C)
        self.project = nn.Linear(C, 2 * config.trm_hidden)

    def check_width(self, llm_hidden: int) -> None:
        check_width(self.config.llm_hidden, llm_hidden, "TextToLatentAdapter LLM hidden size")

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, width = hidden.shape
        self.check_width(width)
        if mask is None:
            mask = hidden.new_ones(B, T, dtype=torch.bool)
        mask = mask.bool()
        tokens = self.compress(hidden.to(self.positions.dtype))  # [B,T,C]
        queries = self.positions.expand(B, -1, -1)  # [B,L,C]
        if self.config.mean_pool:
            weights = mask.to(tokens.dtype)[..., None]  # [B,T,1]
            pooled = (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # [B,C]
            queries = queries + pooled[:, None, :]
        if self.attention is not None:
            attended, _ = self.attention(queries, tokens, tokens, key_padding_mask=~mask, need_weights=False)
            queries = queries + attended  # [B,L,C]
        z = self.project(self.norm(queries))  # [B,L,2D]
        z_H, z_L = z.chunk(2, dim=-1)  # each [B,L,D]
        return z_H, z_L
