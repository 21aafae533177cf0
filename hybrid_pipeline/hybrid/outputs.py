"""What `HybridModel` returns: a training step's losses, a generation's tensors, a decoded prediction,
and its parameter counts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class HybridOutput:
    loss: torch.Tensor           # scalar: the weighted sum below
    lm_loss: torch.Tensor        # scalar: mean over answer tokens (causal) / LLaDA's masked loss (diffusion)
    grid_loss: torch.Tensor      # scalar: TRM cell loss, mean over sequences and supervision steps
    halt_loss: torch.Tensor      # scalar: halting BCE, mean over sequences and supervision steps
    kl: torch.Tensor             # scalar: VAE KL (0 without the VAE)
    logits: torch.Tensor         # [B,L,V] TRM logits of the last supervision step
    q_halt_logits: torch.Tensor  # [B]
    prefix_embeds: torch.Tensor  # [B,K(+1),D_llm] what the LM was given
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class HybridGeneration:
    """What `generate` returns: tensors only (the processor turns them into grids)."""
    trm_tokens: torch.Tensor     # [B,L] argmax of the TRM's last step
    q_halt_logits: torch.Tensor  # [B]
    answer_tokens: torch.Tensor  # [B,N] the LM's new tokens
    prefix_embeds: torch.Tensor  # [B,K(+1),D_llm]
    q_halt_by_step: torch.Tensor  # [B,steps] the TRM's q_halt logit after each supervision step


@dataclass
class HybridPrediction:
    trm_tokens: torch.Tensor            # [B,L] argmax of the TRM's last step
    q_halt_logits: torch.Tensor         # [B]
    trm_grids: list[np.ndarray | None]  # decoded strictly by the data layer; None when malformed
    trm_errors: list[str | None]        # why a TRM grid is None
    answer_texts: list[str]             # the LM's answer, up to its EOS
    answer_grids: list[np.ndarray | None]
    answer_errors: list[str | None]     # why an answer grid is None
    prefix_embeds: torch.Tensor         # [B,K(+1),D_llm]
    q_halt_by_step: torch.Tensor | None = None  # [B,steps] the TRM's q_halt logit after each supervision step


@dataclass
class ParameterReport:
    """Trainable vs frozen parameter counts per part of the hybrid."""

    rows: list[tuple[str, int, int]]  # (part, trainable, frozen)
    notes: list[str] = field(default_factory=list)

    @property
    def trainable(self) -> int:
        return sum(r[1] for r in self.rows)

    @property
    def frozen(self) -> int:
        return sum(r[2] for r in self.rows)

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {part: {"trainable": t, "frozen": f} for part, t, f in self.rows}

    def __str__(self) -> str:
        rows = self.rows + [("total", self.trainable, self.frozen)]
        width = max(len(r[0]) for r in rows)
        lines = [f"{'part':<{width}}  {'trainable':>13}  {'frozen':>13}"]
        lines += [f"{part:<{width}}  {t:>13,}  {f:>13,}" for part, t, f in rows]
        return "\n".join(lines + self.notes)
