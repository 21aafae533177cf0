"""Verifier feedback as one prefix embedding for the hybrid model.

`FeedbackEmbedder` gives the hybrid the verifier's problems (the text side is
`verifier.feedback.FeedbackFormatter`) as one extra prefix token [B,1,D_llm]: a learned vector per
problem kind (a fixed vocabulary, `verifier.verdict.PROBLEM_KINDS`, plus "other", so the table's rows
keep their meaning across checkpoints), averaged over a candidate's problems, next to log counts per
kind. Counting (`problem_counts`) is separate from the module so a data pipeline can store counts as
a tensor column and batch them like any other input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from verifier.verdict import OTHER_KIND, PROBLEM_KINDS, Problem


@dataclass
class FeedbackEmbedderConfig:
    llm_hidden: int = 4096
    kind_dim: int = 64
    mlp_hidden: int = 256
    kinds: tuple[str, ...] = PROBLEM_KINDS  # row i of the table is kinds[i]; then "other", then "none"

    def __post_init__(self):
        self.kinds = tuple(self.kinds)
        if len(set(self.kinds)) != len(self.kinds) or OTHER_KIND in self.kinds:
            raise ValueError(f"FeedbackEmbedderConfig.kinds must be distinct and not include '{OTHER_KIND}', "
                             f"got {self.kinds}")

    @property
    def num_kinds(self) -> int:
        """Kinds counted: the vocabulary plus "other"."""
        return len(self.kinds) + 1


def problem_counts(problems: Sequence[Sequence[Problem]], kinds: Sequence[str] = PROBLEM_KINDS,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Per candidate, how many problems of each kind: [B, len(kinds)+1] float, the last column "other"."""
    index = {kind: i for i, kind in enumerate(kinds)}
    counts = torch.zeros(len(problems), len(kinds) + 1)
    for b, candidate in enumerate(problems):
        for problem in candidate:
            counts[b, index.get(problem.kind, len(kinds))] += 1
    return counts.to(device)


class FeedbackEmbedder(nn.Module):
    """Problem counts [B, num_kinds] -> one prefix embedding [B,1,D_llm]."""

    def __init__(self, config: FeedbackEmbedderConfig | None = None, **overrides):
        super().__init__()
        config = replace(config or FeedbackEmbedderConfig(), **overrides)
        self.config = config
        V = config.num_kinds
        # rows 0..V-1: the kinds and "other"; row V: "no problems", so a clean verdict is a signal too
        self.kind_embedding = nn.Parameter(torch.randn(V + 1, config.kind_dim) * config.kind_dim ** -0.5)
        self.mlp = nn.Sequential(nn.Linear(config.kind_dim + V + 1, config.mlp_hidden), nn.GELU(),
                                 nn.Linear(config.mlp_hidden, config.llm_hidden))

    def counts(self, problems: Sequence[Sequence[Problem]], device: torch.device | str | None = None) -> torch.Tensor:
        return problem_counts(problems, self.config.kinds, device if device is not None else self.kind_embedding.device)

    def embed(self, problems: Sequence[Sequence[Problem]]) -> torch.Tensor:
        """Problems of each of B candidates -> [B,1,D_llm]."""
        return self(self.counts(problems))

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        V = self.config.num_kinds
        if counts.ndim != 2 or counts.shape[1] != V:
            raise ValueError(f"FeedbackEmbedder expects counts of shape [B, {V}] ({len(self.config.kinds)} kinds "
                             f"+ other), got {tuple(counts.shape)}")
        counts = counts.to(self.kind_embedding)  # counts are often built on the CPU by a data pipeline
        total = counts.sum(dim=1, keepdim=True)  # [B,1]
        pooled = counts @ self.kind_embedding[:V] / total.clamp(min=1.0)  # [B,kind_dim], mean over problems
        pooled = torch.where(total > 0, pooled, self.kind_embedding[V])
        # log counts: "one shape problem" and "twenty cell mismatches" should read differently
        features = torch.cat([pooled, counts.log1p(), total.log1p()], dim=-1)  # [B,kind_dim+V+1]
        return self.mlp(features)[:, None, :]  # [B,1,D_llm]
