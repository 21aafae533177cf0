"""Grids in the report: a short string each, drawn by the page's script, with cells that differ
from the expected output marked.

Encoding: rows of digits joined by "/"; a run of equal digits (2 to 30 long) is the digit followed
by a letter for its length (b = 2, ..., z = 26, A = 27, ..., D = 30), so an all-black 30x30 grid
is "0D/0D/.../0D" (89 characters) rather than 900 table cells. The difference from the expected
output travels the same way, as a 0/1 mask (1: the cell differs).
"""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

# The letter for a run of n equal digits is RUN_LETTERS[n] (index 0 and 1 unused: a lone digit is itself).
RUN_LETTERS = "-abcdefghijklmnopqrstuvwxyzABCD"


def encode_grid(grid: Any) -> str:
    """[[0, 0, 0, 0], [1, 2, 2, 2]] -> "0d/12c"."""
    rows = []
    for row in np.asarray(grid, dtype=np.uint8).tolist():
        parts, i = [], 0
        while i < len(row):
            j = i
            while j < len(row) and row[j] == row[i]:
                j += 1
            parts.append(str(row[i]) + (RUN_LETTERS[j - i] if j - i > 1 else ""))
            i = j
        rows.append("".join(parts))
    return "/".join(rows)


def shape_text(grid: Any) -> str:
    h, w = np.asarray(grid).shape
    return f"{h}x{w}"


def differing_cells(answer: Any, expected: Any) -> np.ndarray | None:
    """Boolean mask (H, W) of the cells where `answer` differs from `expected`; None when their shapes differ."""
    a, e = np.asarray(answer), np.asarray(expected)
    return None if a.shape != e.shape else a != e


def comparison(answer: Any, expected: Any | None) -> tuple[str, str, np.ndarray | None]:
    """How an answer compares with the expected output: (css class, words, mask of differing cells)."""
    if expected is None:
        return "", "", None
    mask = differing_cells(answer, expected)
    if mask is None:
        return "bad", f"shape {shape_text(answer)}, expected {shape_text(expected)}", None
    wrong = int(mask.sum())
    if wrong == 0:
        return "ok", "matches the expected output", None
    return "bad", f"{wrong} of {mask.size} cells differ", mask


def grid_figure(grid: Any, caption: str, *, expected: Any | None = None, extra: str = "") -> str:
    """A captioned grid; with `expected`, its difference from it marked on the cells and said in words.
    `caption` is plain text; `extra` is HTML added under it."""
    if grid is None:
        return f'<figure class="fig"><div class="nogrid">no grid</div><figcaption>{escape(caption)}</figcaption></figure>'
    rows = np.asarray(grid, dtype=np.uint8)
    if rows.ndim != 2 or rows.size == 0:
        return (f'<figure class="fig"><div class="nogrid">empty grid</div>'
                f'<figcaption>{escape(caption)}</figcaption></figure>')
    cls, words, mask = comparison(rows, expected)
    marks = f' data-x="{encode_grid(mask)}"' if mask is not None else ""
    said = f'<br><span class="{cls}">{escape(words)}</span>' if words else ""
    return (f'<figure class="fig"><div class="g" data-g="{encode_grid(rows)}"{marks}>{shape_text(rows)}</div>'
            f"<figcaption>{escape(caption)} <span class=\"muted\">{shape_text(rows)}</span>{said}{extra}"
            "</figcaption></figure>")
