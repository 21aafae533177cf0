"""`LatentToTextAdapter`: the TRM's latents z_H, z_L -> K prefix embeddings for the language model.

K learned queries attention-pool the L grid cells of each latent; the two pooled vectors are
concatenated and an MLP maps them to the LM width. One query (the original design) squeezes the whole
grid into a single token and loses its layout; with `regions` = r the 30x30 canvas is cut into an
r x r grid of regions and each query pools only its own region, so the prefix keeps where things are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from adapters.text_to_latent import check_width


@dataclass
class LatentToTextConfig:
    trm_hidden: int = 512
    llm_hidden: int = 4096
    num_queries: int = 8
    regions: int | None = None  # r: r*r queries, one per region of the grid (replaces num_queries)
    grid_side: int = 30
    mlp_hidden: int = 2048

    @property
    def prefix_length(self) -> int:
        return self.regions ** 2 if self.regions else self.num_queries


def region_mask(regions: int, side: int) -> torch.Tensor:
    """[r*r, side*side] bool: query q may read cell c when c lies in region q (row-major both)."""
    if not 1 <= regions <= side:
        raise ValueError(f"regions should be between 1 and the grid side {side}, got {regions}")
    index = torch.arange(side)
    band = index * regions // side  # region row/column of each grid row/column
    cell_region = (band[:, None] * regions + band[None, :]).reshape(-1)  # [side*side]
    return cell_region[None, :] == torch.arange(regions * regions)[:, None]


class AttentionPool(nn.Module):
    """K learned queries, each a softmax-weighted average of the cells: [B,L,D] -> [B,K,D]."""

    def __init__(self, dim: int, num_queries: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * dim ** -0.5)
        self.key = nn.Linear(dim, dim, bias=False)

    def forward(self, cells: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        scores = torch.einsum("bld,kd->bkl", self.key(cells), self.queries) / math.sqrt(cells.shape[-1])  # [B,K,L]
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        return scores.softmax(dim=-1) @ cells  # [B,K,D]


class LatentToTextAdapter(nn.Module):
    """(z_H, z_L) each [B,L,D] -> prefix embeddings [B,K,D_llm]."""

    def __init__(self, config: LatentToTextConfig | None = None, **overrides):
        super().__init__()
        config = replace(config or LatentToTextConfig(), **overrides)
        self.config = config
        K, D = config.prefix_length, config.trm_hidden
        self.pool_high = AttentionPool(D, K)
        self.pool_low = AttentionPool(D, K)
        if config.regions:
            self.register_buffer("allowed", region_mask(config.regions, config.grid_side), persistent=False)
        else:
            self.allowed = None
        self.mlp = nn.Sequential(nn.Linear(2 * D, config.mlp_hidden), nn.GELU(),
                                 nn.Linear(config.mlp_hidden, config.llm_hidden))

    def check_width(self, llm_hidden: int) -> None:
        check_width(self.config.llm_hidden, llm_hidden, "LatentToTextAdapter LLM hidden size")

    def forward(self, z_H: torch.Tensor, z_L: torch.Tensor) -> torch.Tensor:
        check_width(self.config.trm_hidden, z_H.shape[-1], "LatentToTextAdapter TRM hidden size")
        if self.allowed is not None and z_H.shape[1] != self.allowed.shape[1]:
            raise ValueError(f"LatentToTextAdapter with regions expects {self.allowed.shape[1]} grid cells "
                             f"({self.config.grid_side}x{self.config.grid_side}), got {z_H.shape[1]}")
        pooled = torch.cat([self.pool_high(z_H, self.allowed), self.pool_low(z_L, self.allowed)], dim=-1)  # [B,K,2D]
        return self.mlp(pooled)  # [B,K,D_llm]
