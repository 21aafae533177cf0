"""Verifier feedback for the next attempt: as short text for the prompt, and as one prefix embedding.

`FeedbackFormatter.to_text` turns the verifier's `Problem`s into a few deterministic lines, the
most important kinds first (an answer that does not parse matters more than a palette slip), small
grids drawn inline as rows joined by "/" ("012/340"), and the whole capped at `max_chars` so a
long list of problems cannot crowd the task out of the prompt.

`FeedbackEmbedder` gives the hybrid the same information as one extra prefix token [B,1,D_llm]:
a learned vector per problem kind (a fixed vocabulary plus "other", so the table's rows keep their
meaning across checkpoints), averaged over a candidate's problems, next to log counts per kind.
Counting (`problem_counts`) is separate from the module so a data pipeline can store counts as a
tensor column and batch them like any other input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:  # only read through its fields, so importing adapters does not load the verifier
    from verifier.verdict import Problem

# The kinds the verifier and the planner emit, most important first: without a candidate or a readable
# grid nothing else can be checked; a wrong size, shape or palette is a plain error in the answer; a
# program's failures come next; consistency checks only make an answer doubtful.
PROBLEM_KINDS = (
    "no_candidate",
    "parse",
    "format",
    "size",
    "values",
    "shape",
    "palette",
    "program_crashed",
    "program_exception",
    "program_timeout",
    "program_memory_exceeded",
    "program_invalid_output",
    "program_wrong_output",
    "leave_one_out",
    "augmentation",
)
OTHER_KIND = "other"
SHAPE_KINDS = ("shape", "size")  # a pair of ints is a shape, a list of pairs the shapes allowed
COLOUR_KINDS = ("palette", "values")  # a list of ints is a set of colours
MAX_LISTED_CELLS = 6  # cells of a grid difference spelled out
NO_PROBLEMS = "No problems found."
HEADER = "Problems with the previous answer:"


@dataclass
class FeedbackFormatter:
    """Problems -> feedback text for the next prompt. Same problems in, same text out."""

    max_chars: int = 600        # the whole text, header and "... more" line included
    max_line_chars: int = 160   # one problem's line
    max_grid_cells: int = 100   # larger grids are summarised by their shape
    priority: tuple[str, ...] = PROBLEM_KINDS  # kinds not listed come after these, in input order

    def to_text(self, problems: Sequence[Problem], *, max_chars: int | None = None) -> str:
        limit = self.max_chars if max_chars is None else max_chars
        if not problems:
            return NO_PROBLEMS[:limit]
        rank = {kind: i for i, kind in enumerate(self.priority)}
        # sorted() is stable: problems of one kind keep the verifier's order
        ordered = sorted(problems, key=lambda p: rank.get(p.kind, len(rank)))
        lines = [_clip(self.line(p), self.max_line_chars) for p in ordered]

        def more(n: int) -> str:
            return f"\n- ... and {n} more problem{'s' if n != 1 else ''}"

        text = HEADER
        for i, line in enumerate(lines):
            left = len(lines) - i - 1
            candidate = text + "\n" + line
            if len(candidate) + (len(more(left)) if left else 0) > limit:
                text += more(len(lines) - i)
                break
            text = candidate
        return text[:limit]  # only bites when even the header and the count do not fit

    def line(self, problem: Problem) -> str:
        """One problem: ``- kind (where): expected X, got Y. detail``."""
        head = f"- {problem.kind}" + (f" ({problem.where})" if problem.where else "")
        parts = []
        if problem.expected is not None:
            parts.append(f"expected {self.value(problem.expected, problem.kind)}")
        if problem.got is not None:
            parts.append(f"got {self.value(problem.got, problem.kind)}")
        body = ", ".join(parts)
        detail = _one_line(problem.detail or "")
        if detail:
            body = f"{body}. {detail}" if body else detail
        return f"{head}: {body}" if body else head

    def value(self, value: Any, kind: str) -> str:
        """A compact rendering of an expected/got value: grid, shape(s), colour set, cell difference, text."""
        if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
            value = value.tolist()  # numpy arrays and scalars
        if isinstance(value, (set, frozenset)):
            return _colours(value)
        if kind in SHAPE_KINDS and _is_pair(value):
            return f"{value[0]}x{value[1]}"
        if kind in SHAPE_KINDS and isinstance(value, (list, tuple)) and value and all(map(_is_pair, value)):
            shapes = [f"{h}x{w}" for h, w in value]
            # the verifier states size limits as [smallest, largest]
            return f"{shapes[0]} to {shapes[1]}" if kind == "size" and len(shapes) == 2 else " or ".join(shapes)
        if isinstance(value, dict) and _is_pair(value.get("shape")):
            return self.grid_difference(value)
        if _is_grid(value):
            h, w = len(value), len(value[0])
            if h * w > self.max_grid_cells:
                return f"a {h}x{w} grid"
            return "/".join("".join(str(int(c)) for c in row) for row in value)
        if isinstance(value, (list, tuple)) and all(_is_int(v) for v in value):
            return _colours(value) if kind in COLOUR_KINDS else "[" + ", ".join(map(str, value)) + "]"
        if isinstance(value, str):
            return _one_line(value)
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, dict):
            return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
        return _one_line(str(value))

    def grid_difference(self, value: dict) -> str:
        """The verifier's side of a grid difference, {"shape": [h, w], "cells": [[row, col, colour], ...]}:
        ``3x3 grid with (0,1)=5 (2,2)=0``."""
        h, w = value["shape"]
        text = f"{h}x{w} grid"
        cells = [c for c in value.get("cells") or () if isinstance(c, (list, tuple)) and len(c) == 3]
        if cells:
            listed = " ".join(f"({r},{c})={v}" for r, c, v in cells[:MAX_LISTED_CELLS])
            text += f" with {listed}" + (" ..." if len(cells) > MAX_LISTED_CELLS else "")
        return text


def _colours(values: Any) -> str:
    return "{" + ", ".join(map(str, sorted(set(values)))) + "}"


def _is_pair(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(v) for v in value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_grid(value: Any) -> bool:
    """A non-empty rectangular list of lists of ints."""
    if not (isinstance(value, (list, tuple)) and value and all(isinstance(r, (list, tuple)) and r for r in value)):
        return False
    width = len(value[0])
    return all(len(r) == width and all(_is_int(c) for c in r) for r in value)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:max(limit - 3, 0)] + "..."


# --------------------------------------------------------------------------------------------------
# embedding


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
