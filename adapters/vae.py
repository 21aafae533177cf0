"""`VAEAdapter`: a variational bottleneck between two representations (e.g. text states and TRM latents).

Training samples z = mu + sigma * eps (the reparameterisation trick, so gradients reach mu and
logvar) and pays beta * KL(q(z|x) || N(0, I)); evaluation uses mu, so answers are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class VAEOutput:
    sample: torch.Tensor  # [..., out_dim]
    mu: torch.Tensor      # [..., latent_dim]
    logvar: torch.Tensor  # [..., latent_dim]
    kl: torch.Tensor      # scalar, already multiplied by beta


class VAEAdapter(nn.Module):
    """x [..., in_dim] -> sample [..., out_dim] (out_dim None: the latent itself) plus mu, logvar, beta*KL."""

    def __init__(self, in_dim: int, latent_dim: int, out_dim: int | None = None, beta: float = 1.0):
        super().__init__()
        self.mu = nn.Linear(in_dim, latent_dim)
        self.logvar = nn.Linear(in_dim, latent_dim)
        self.decode = nn.Linear(latent_dim, out_dim) if out_dim is not None else nn.Identity()
        self.beta = beta

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        mu, logvar = self.mu(x), self.logvar(x)
        if self.training:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps
        else:
            z = mu
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1).mean()  # per vector, averaged
        return VAEOutput(self.decode(z), mu, logvar, self.beta * kl)
