"""TRM training loss for one supervision step: per-cell cross-entropy + ACT halting BCE, and metrics.

Label convention: `labels` (B, L) use the model's vocabulary and `ignore_index` marks cells that do not
count. The default is 0 (PAD): the reference ARC data stores PAD outside the grid and ignores exactly
those cells, so loss and accuracy cover the grid and its EOS border only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hybrid_pipeline.arc.grids import PAD as PAD_ID  # label cells the losses ignore


def exactly_right(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B] bool: every non-PAD cell predicted right (what the halting head learns to recognise)."""
    return ((logits.argmax(-1) == labels) | (labels == PAD_ID)).all(dim=-1)


def log_stablemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log of stablemax: s(x) = x + 1 for x >= 0, 1 / (1 - x) for x < 0, normalised.

    Unlike softmax it grows linearly, so confident logits do not drive the loss to float precision
    limits (the "softmax collapse" the paper's predecessor HRM hit). Computed in float64.
    """
    x = logits.to(torch.float64)
    s = torch.where(x < 0, 1 / (1 - x + 1e-30), x + 1)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = PAD_ID) -> torch.Tensor:
    """Per-cell loss (B, L) in float64; ignored cells are 0."""
    valid = labels != ignore_index
    target = torch.where(valid, labels, 0).long()
    logp = log_stablemax(logits).gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (B, L)
    return -torch.where(valid, logp, 0)


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = PAD_ID) -> torch.Tensor:
    """Per-cell loss (B, L) in float32; ignored cells are 0."""
    V = logits.shape[-1]
    loss = F.cross_entropy(logits.float().reshape(-1, V), labels.long().reshape(-1), ignore_index=ignore_index, reduction="none")
    return loss.view(labels.shape)


LOSS_FUNCTIONS = {"stablemax": stablemax_cross_entropy, "softmax": softmax_cross_entropy}

SUPERVISION_PRESETS = {"uniform": (1.0, 0.0), "moderate": (3.0, 0.5), "aggressive": (5.0, 1.0), "extreme": (10.0, 2.0)}


@dataclass
class SupervisionWeighting:
    """Reweights supervision steps: later steps count more (base > 1) and improving on the previous
    step is rewarded (improvement_reward_scale > 0). `uniform` (1, 0) is the paper."""

    base: float = 1.0
    improvement_reward_scale: float = 0.0

    @classmethod
    def preset(cls, name: str) -> "SupervisionWeighting":
        if name not in SUPERVISION_PRESETS:
            raise ValueError(f"unknown supervision weighting preset {name!r}; choose from {', '.join(SUPERVISION_PRESETS)}")
        return cls(*SUPERVISION_PRESETS[name])

    def step_weights(self, max_steps: int) -> torch.Tensor:
        """(max_steps,) float64 weights proportional to base**step with mean 1, so uniform leaves the loss as is."""
        w = torch.tensor(self.base, dtype=torch.float64) ** torch.arange(max_steps, dtype=torch.float64)
        return w * (max_steps / w.sum())


@dataclass
class StepLoss:
    loss: torch.Tensor  # scalar, to backpropagate (sum over the batch; divide by the global batch as the paper)
    seq_loss: torch.Tensor  # (B,) detached per-sequence cell loss: report it, pass it back as `prev_seq_loss`
    metrics: dict[str, torch.Tensor]  # sums over halted sequences; turn into rates with `summarize_metrics`


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor, *, loss_type: str = "stablemax",
                  ignore_index: int = PAD_ID) -> torch.Tensor:
    """(B,) each sequence's cell loss, averaged over its cells that are not `ignore_index` (0 for a
    sequence with none), in float32."""
    cell_loss = LOSS_FUNCTIONS[loss_type](logits, labels, ignore_index=ignore_index)  # (B, L)
    return (cell_loss.sum(-1) / (labels != ignore_index).sum(-1).clamp_min(1)).float()


def act_loss(
    outputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
    *,
    loss_type: str = "stablemax",
    ignore_index: int = PAD_ID,
    halt_loss_weight: float = 0.5,
    weighting: SupervisionWeighting | None = None,
    max_steps: int | None = None,
    prev_seq_loss: torch.Tensor | None = None,
) -> StepLoss:
    """Loss of one supervision step, from `TRM.forward` outputs and the carry's labels (B, L).

    Cell loss is averaged per sequence over non-ignored cells, then summed over the batch; the Q head
    learns by BCE to predict "this sequence is exactly right now", weighted `halt_loss_weight`.
    With `weighting`, sequence i's cell loss is multiplied by step_weights[steps_i - 1] (needs
    `max_steps`), and for steps after the first, `scale * (prev - loss) / prev` is subtracted using
    `prev_seq_loss` (B,) from the previous call.
    """
    if loss_type not in LOSS_FUNCTIONS:
        raise ValueError(f"unknown loss_type {loss_type!r}; choose from {', '.join(LOSS_FUNCTIONS)}")
    logits, q_halt = outputs["logits"], outputs["q_halt_logits"]
    steps, halted = outputs["steps"], outputs["halted"]

    valid = labels != ignore_index  # (B, L)
    counts = valid.sum(-1)  # (B,)
    seq_loss = sequence_loss(logits, labels, loss_type=loss_type, ignore_index=ignore_index)  # (B,)

    with torch.no_grad():
        correct = valid & (logits.argmax(-1) == labels)  # (B, L)
        seq_correct = correct.sum(-1) == counts  # (B,)

    weighted = seq_loss
    if weighting is not None:
        if max_steps is None:
            raise ValueError("act_loss: `weighting` needs `max_steps` (the model's halt_max_steps)")
        w = weighting.step_weights(max_steps).to(seq_loss.device, seq_loss.dtype)
        weighted = seq_loss * w[(steps.long() - 1).clamp(0, max_steps - 1)]
        if weighting.improvement_reward_scale and prev_seq_loss is not None:
            prev = prev_seq_loss.detach().to(seq_loss.dtype)
            gain = (prev - seq_loss) / prev.clamp_min(1e-8)
            weighted = weighted - weighting.improvement_reward_scale * torch.where(steps > 1, gain, 0)

    lm_loss = weighted.sum()
    halt_loss = F.binary_cross_entropy_with_logits(q_halt, seq_correct.to(q_halt.dtype), reduction="sum")
    loss = lm_loss + halt_loss_weight * halt_loss

    with torch.no_grad():
        done = halted & (counts > 0)  # metrics describe final answers only
        says_halt = q_halt > 0
        metrics = {
            "count": done.sum(),
            "cell_accuracy": torch.where(done, correct.sum(-1) / counts.clamp_min(1), 0).sum(),
            "exact_accuracy": (done & seq_correct).sum(),
            "halt_true_positive": (done & says_halt & seq_correct).sum(),
            "halt_predicted": (done & says_halt).sum(),
            "halt_actual": (done & seq_correct).sum(),
            "steps": torch.where(done, steps, 0).sum(),
            "lm_loss": lm_loss.detach(),
            "halt_loss": halt_loss.detach(),
        }
    return StepLoss(loss=loss, seq_loss=seq_loss.detach(), metrics=metrics)


def summarize_metrics(sums: dict[str, torch.Tensor | float]) -> dict[str, float]:
    """Rates from `act_loss` metric sums (added up over batches). Precision/recall treat q_halt > 0
    as the prediction "this answer is exactly right" (undefined rates are reported as 0)."""
    s = {k: float(v) for k, v in sums.items()}
    count = max(s["count"], 1.0)
    return {
        "count": s["count"],
        "cell_accuracy": s["cell_accuracy"] / count,
        "exact_accuracy": s["exact_accuracy"] / count,
        "halt_precision": s["halt_true_positive"] / max(s["halt_predicted"], 1.0),
        "halt_recall": s["halt_true_positive"] / max(s["halt_actual"], 1.0),
        "mean_steps": s["steps"] / count,
    }


def loss_by_step(seq_loss: torch.Tensor, steps: torch.Tensor, max_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-supervision-step report: (sum of seq_loss, number of sequences) at each step index, (max_steps,) each."""
    index = (steps.long() - 1).clamp(0, max_steps - 1)
    total = torch.zeros(max_steps, dtype=torch.float64, device=seq_loss.device).index_add_(0, index, seq_loss.double())
    count = torch.zeros(max_steps, dtype=torch.long, device=seq_loss.device).index_add_(0, index, torch.ones_like(index))
    return total, count
