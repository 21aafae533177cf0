"""Verifier feedback as short text for the next attempt's prompt.

`FeedbackFormatter.to_text` turns the verifier's `Problem`s into a few deterministic lines, the
most important kinds first (an answer that does not parse matters more than a palette slip), small
grids drawn inline as rows joined by "/" ("012/340"), and the whole capped at `max_chars` so a
long list of problems cannot crowd the task out of the prompt. The same problems reach the hybrid
model as one prefix embedding through `adapters.feedback.FeedbackEmbedder`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from verifier.verdict import PROBLEM_KINDS, Problem

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
