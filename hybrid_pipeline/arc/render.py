"""Drawing grids and tasks in a terminal: ANSI background colours, or digits when colour is off."""

from __future__ import annotations

import os
import sys
from typing import TextIO

import numpy as np

from hybrid_pipeline.arc.tasks import Task
from hybrid_pipeline.arc.wording import plural

# The usual ARC palette (black, blue, red, green, yellow, grey, magenta, orange, sky, maroon) as RGB.
PALETTE = (
    (0, 0, 0), (0, 116, 217), (255, 65, 54), (46, 204, 64), (255, 220, 0),
    (170, 170, 170), (240, 18, 190), (255, 133, 27), (127, 219, 255), (135, 12, 37),
)


def use_colour(stream: TextIO = sys.stdout) -> bool:
    """Colour on a terminal unless NO_COLOR is set (https://no-color.org)."""
    return "NO_COLOR" not in os.environ and stream.isatty()


def grid_lines(grid: np.ndarray, colour: bool) -> list[str]:
    """One string per row: two coloured spaces per cell, or the digits with colour off."""
    if not colour:
        return [" ".join(str(v) for v in row) for row in grid]
    return ["".join(f"\x1b[48;2;{r};{g};{b}m  " for r, g, b in (PALETTE[v] for v in row)) + "\x1b[0m"
            for row in grid]


def _side_by_side(left: list[str], right: list[str], left_width: int, gap: str = "  ->  ") -> list[str]:
    rows = max(len(left), len(right))
    left = left + [""] * (rows - len(left))
    right = right + [""] * (rows - len(right))
    # Pad by visible width: ANSI escapes take no columns.
    return [f"{a}{' ' * (left_width - _visible_width(a))}{gap if i == 0 else ' ' * len(gap)}{b}"
            for i, (a, b) in enumerate(zip(left, right))]


def _visible_width(line: str) -> int:
    width, in_escape = 0, False
    for ch in line:
        if ch == "\x1b":
            in_escape = True
        elif in_escape:
            in_escape = ch != "m"
        else:
            width += 1
    return width


def render_task(task: Task, *, colour: bool, show_solutions: bool = True) -> str:
    """The task's pairs drawn input -> output, one below the other."""
    cell = 2
    out = [f"task {task.id} ({task.source}): {plural(len(task.train), 'train pair')}, "
           f"{plural(len(task.test), 'test input')}"]
    pairs = [("train", i, ex) for i, ex in enumerate(task.train)] + [("test", i, ex) for i, ex in enumerate(task.test)]
    for split, i, ex in pairs:
        h_in, w_in = ex.input.shape
        label = f"{split}[{i}]  {h_in}x{w_in}"
        if ex.output is not None and (split == "train" or show_solutions):
            label += f" -> {ex.output.shape[0]}x{ex.output.shape[1]}"
            right = grid_lines(ex.output, colour)
        else:
            right = ["?"]
        out.append("")
        out.append(label)
        left_width = w_in * cell if colour else w_in * 2 - 1
        out.extend(_side_by_side(grid_lines(ex.input, colour), right, left_width))
    return "\n".join(out) + "\n"
