"""`SlotRefiner`: a small recursive refiner from the TRM's latents to K prefix embeddings, with confidence.

Each of K slots holds four parts of different widths: context (D/2, what the slot read from the grid
at the start), reasoning (D/4), refinement (D/4) and confidence (D/8). A step lets every slot attend
to the grid cells (optionally only the cells of a chunk mask, e.g. the low-confidence part of an
answer), then nudges each part by a gated residual scaled by `delta_scale`, so the state changes
slowly and a step can be taken or skipped safely. At eval a sample halts once its confidence passes
`halt_threshold`; training always runs every step so each one gets gradient.

Inputs and output match `LatentToTextAdapter` (z_H, z_L [B,L,D] -> [B,K,D_llm]), so the hybrid can
use either; `return_stats=True` adds per-step confidence and steps taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from adapters.latent_to_text import AttentionPool
from adapters.text_to_latent import check_width


@dataclass
class SlotRefinerConfig:
    trm_hidden: int = 512
    llm_hidden: int = 4096
    num_slots: int = 8
    max_steps: int = 4
    delta_scale: float = 0.1
    halt_threshold: float = 0.9
    mlp_hidden: int = 2048

    def __post_init__(self):
        if self.trm_hidden % 8:
            raise ValueError(f"SlotRefiner needs trm_hidden divisible by 8 (slot widths D/2, D/4, D/8), "
                             f"got {self.trm_hidden}")


@dataclass
class SlotRefinerStats:
    confidence: torch.Tensor        # [steps, B] mean slot confidence after each step
    steps_taken: torch.Tensor       # [B] steps each sample ran before halting
    final_confidence: torch.Tensor  # [B]


class GatedUpdate(nn.Module):
    """part <- part + scale * sigmoid(gate(x)) * tanh(delta(x))."""

    def __init__(self, in_dim: int, out_dim: int, scale: float):
        super().__init__()
        self.delta = nn.Linear(in_dim, out_dim)
        self.gate = nn.Linear(in_dim, out_dim)
        self.scale = scale

    def forward(self, part: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return part + self.scale * torch.sigmoid(self.gate(x)) * torch.tanh(self.delta(x))


class SlotRefiner(nn.Module):
    """(z_H, z_L) each [B,L,D] (+ chunk mask [B,L]) -> prefix embeddings [B,K,D_llm]."""

    def __init__(self, config: SlotRefinerConfig | None = None, **overrides):
        super().__init__()
        config = replace(config or SlotRefinerConfig(), **overrides)
        self.config = config
        D, K = config.trm_hidden, config.num_slots
        self.widths = {"context": D // 2, "reasoning": D // 4, "refinement": D // 4, "confidence": D // 8}
        state = sum(self.widths.values())  # 9D/8
        self.cells = nn.Linear(2 * D, D)  # z_H and z_L of a cell, side by side
        self.initial_read = AttentionPool(D, K)
        self.to_context = nn.Linear(D, self.widths["context"])
        self.initial = nn.ParameterDict({name: nn.Parameter(torch.zeros(K, self.widths[name]))
                                         for name in ("reasoning", "refinement", "confidence")})
        self.query = nn.Linear(state, D)
        self.key = nn.Linear(D, D, bias=False)
        self.norm = nn.LayerNorm(state + D)
        self.updates = nn.ModuleDict({name: GatedUpdate(state + D, width, config.delta_scale)
                                      for name, width in self.widths.items()})
        self.confidence_head = nn.Linear(self.widths["confidence"], 1)
        readout = state - self.widths["confidence"]
        self.mlp = nn.Sequential(nn.Linear(readout, config.mlp_hidden), nn.GELU(),
                                 nn.Linear(config.mlp_hidden, config.llm_hidden))

    def check_width(self, llm_hidden: int) -> None:
        check_width(self.config.llm_hidden, llm_hidden, "SlotRefiner LLM hidden size")

    def forward(self, z_H: torch.Tensor, z_L: torch.Tensor, chunk_mask: torch.Tensor | None = None,
                return_stats: bool = False):
        """chunk_mask [B,L] bool limits which cells the slots read (None: all)."""
        check_width(self.config.trm_hidden, z_H.shape[-1], "SlotRefiner TRM hidden size")
        B = z_H.shape[0]
        cells = self.cells(torch.cat([z_H, z_L], dim=-1))  # [B,L,D]
        allowed = None
        if chunk_mask is not None:
            if not chunk_mask.bool().any(dim=1).all():
                raise ValueError("SlotRefiner chunk_mask selects no cell for some sample; give each at least one")
            allowed = chunk_mask.bool()[:, None, :]  # [B,1,L]
        parts = {"context": self.to_context(self.initial_read(cells, allowed))}  # [B,K,D/2]
        parts.update({name: p.expand(B, -1, -1) for name, p in self.initial.items()})
        keys = self.key(cells)  # [B,L,D]
        running = torch.ones(B, dtype=torch.bool, device=cells.device)
        steps_taken = torch.zeros(B, dtype=torch.long, device=cells.device)
        history = []
        for _ in range(self.config.max_steps):
            state = torch.cat([parts[name] for name in self.widths], dim=-1)  # [B,K,9D/8]
            scores = torch.einsum("bkd,bld->bkl", self.query(state), keys) / math.sqrt(keys.shape[-1])
            if allowed is not None:
                scores = scores.masked_fill(~allowed, float("-inf"))
            read = scores.softmax(dim=-1) @ cells  # [B,K,D]
            x = self.norm(torch.cat([state, read], dim=-1))
            keep = running[:, None, None]  # halted samples keep their state
            parts = {name: torch.where(keep, self.updates[name](part, x), part) for name, part in parts.items()}
            steps_taken = steps_taken + running.long()
            confidence = torch.sigmoid(self.confidence_head(parts["confidence"])).squeeze(-1).mean(dim=-1)  # [B]
            history.append(confidence)
            if not self.training:
                running = running & (confidence <= self.config.halt_threshold)
                if not running.any():
                    break
        readout = torch.cat([parts["context"], parts["reasoning"], parts["refinement"]], dim=-1)  # [B,K,D]
        prefix = self.mlp(readout)  # [B,K,D_llm]
        if not return_stats:
            return prefix
        return prefix, SlotRefinerStats(torch.stack(history), steps_taken, history[-1])
