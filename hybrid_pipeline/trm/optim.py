"""The TRM paper's optimisers: Adam-atan2 for the network, sign-SGD for touched puzzle-embedding rows,
and an EMA of the trainable weights."""

from __future__ import annotations

import copy

import torch
from torch import nn

from hybrid_pipeline.trm.model import PuzzleEmbedding


class AdamAtan2(torch.optim.Optimizer):
    """Adam with atan2(m, sqrt(v)) in place of m / (sqrt(v) + eps): bounded steps and no eps to tune.

    Per step, after decoupled weight decay `p *= 1 - lr * weight_decay`:
        p -= lr / (1 - beta1**t) * atan2(m, sqrt(v) / sqrt(1 - beta2**t))
    """

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.95), weight_decay: float = 0.1):
        if lr < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"AdamAtan2: need lr >= 0, weight_decay >= 0, betas in [0, 1); got {lr}, {weight_decay}, {betas}")
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                p.mul_(1 - lr * wd)
                bc1, bc2 = 1 - beta1**t, 1 - beta2**t
                p.add_(torch.atan2(m, v.sqrt() / bc2**0.5), alpha=-lr / bc1)
        return loss


class SparseSignSGD(torch.optim.Optimizer):
    """Sign-SGD with decoupled weight decay on the puzzle-embedding rows used in the last batch.

    With thousands of puzzles and a few per batch, each row's gradient is rare and noisy; Adam on such
    sparse gradients degenerates to sign-SGD anyway, without Adam's dense state. Rows that appear
    several times in a batch have their gradients summed first. Untouched rows do not decay. It reads
    the rows of the embedding's latest training forward, so step once per forward, as the paper's loop does.
    """

    def __init__(self, embedding: PuzzleEmbedding, lr: float = 1e-2, weight_decay: float = 0.1):
        if lr < 0 or weight_decay < 0:
            raise ValueError(f"SparseSignSGD: need lr >= 0 and weight_decay >= 0; got {lr}, {weight_decay}")
        self.embedding = embedding
        super().__init__([embedding.weight], dict(lr=lr, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        rows, ids = self.embedding.rows, self.embedding.ids
        if rows is None or rows.grad is None:
            return None
        table = self.embedding.weight  # (N, dim)
        unique, inverse = ids.unique(return_inverse=True)
        grad = torch.zeros(len(unique), table.shape[1], dtype=rows.grad.dtype, device=table.device)
        grad.index_add_(0, inverse, rows.grad)  # (U, dim)
        group = self.param_groups[0]
        updated = table[unique] * (1 - group["lr"] * group["weight_decay"]) - group["lr"] * grad.sign()
        table[unique] = updated.to(table.dtype)
        return None

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.embedding.rows, self.embedding.ids = None, None


class EMA:
    """Exponential moving average of trainable parameters; buffers (and so the puzzle table) are not averaged."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = decay
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach(), 1 - self.decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for name, p in model.named_parameters():
            if name in self.shadow:
                p.copy_(self.shadow[name])

    def averaged(self, model: nn.Module) -> nn.Module:
        """A deep copy of `model` carrying the averaged weights (for evaluation)."""
        copy_ = copy.deepcopy(model)
        self.copy_to(copy_)
        return copy_

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}
