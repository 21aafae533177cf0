"""Colour primitives: which colour each cell is, never where it goes.

Covers the inferred colour map `recolor` (the search's main finisher), replacing, keeping and
removing one colour, swapping the two colours of a two-colour grid, repainting the background,
two-colour masks (`binarize`, `invert_mask`) that a final `recolor` paints, the most and least
frequent colour as a 1x1 grid, a bar of the colours ordered by how many cells they cover, and the
non-zero cells lined up as one row.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hybrid_pipeline.dsl.grids import background
from hybrid_pipeline.dsl.registry import Context, DSLError, Grid, primitive


def _infer_mapping(grids: Sequence[Grid], targets: Sequence[Grid]) -> tuple | None:
    """The one colour map sending every demonstration cell to its target colour, identity entries
    left out; None when shapes differ, a colour would need two images, or nothing changes."""
    pairs = np.zeros(100, dtype=np.int64)
    for grid, target in zip(grids, targets):
        if grid.shape != target.shape:
            return None
        pairs += np.bincount((grid.astype(np.int64) * 10 + target).ravel(), minlength=100)
    seen = pairs.reshape(10, 10) > 0  # seen[source, target]
    if (seen.sum(axis=1) > 1).any():
        return None
    mapping = {int(s): int(np.argmax(seen[s])) for s in np.flatnonzero(seen.any(axis=1))}
    mapping = {s: t for s, t in mapping.items() if s != t}
    if all(g.size == 1 for g in grids) and len({int(t[0, 0]) for t in targets}) > 1:
        return None  # single cells of many colours: the map would just memorise each answer
    return (mapping,) if mapping else None


@primitive(infer=_infer_mapping)
def recolor(grid: Grid, mapping: dict) -> Grid:
    """Paint each colour by `mapping` (source -> target); colours not in it stay as they are.

    >>> recolor(np.array([[1, 2], [2, 0]], dtype=np.uint8), {2: 5}).tolist()
    [[1, 5], [5, 0]]
    """
    lut = np.arange(10, dtype=np.uint8)
    for source, target in mapping.items():
        lut[source] = target
    return lut[grid]


def _replace_options(ctx: Context) -> list[tuple]:
    """An input colour into a colour the outputs introduce: a final `recolor` covers every other
    replacement, so only a new colour needed before a later step is worth enumerating."""
    return [(a, b) for a in ctx.input_colours for b in ctx.new_colours if a != b]


@primitive(_replace_options)
def replace_colour(grid: Grid, source: int, target: int) -> Grid:
    """Paint every `source` cell `target`; DSLError when the grid has no `source` cell.

    >>> replace_colour(np.array([[1, 2], [2, 0]], dtype=np.uint8), 2, 7).tolist()
    [[1, 7], [7, 0]]
    """
    mask = grid == source
    if not mask.any():
        raise DSLError(f"no cell of colour {source}")
    out = grid.copy()
    out[mask] = target
    return out


def _foreground_options(ctx: Context) -> list[tuple]:
    """Every input colour but 0, which is the background in most tasks."""
    return [(c,) for c in ctx.input_colours if c != 0]


@primitive(_foreground_options)
def keep_colour(grid: Grid, colour: int) -> Grid:
    """Keep only the cells of `colour`; every other cell becomes background.

    >>> keep_colour(np.array([[0, 2, 3], [0, 3, 0], [0, 0, 0]], dtype=np.uint8), 3).tolist()
    [[0, 0, 3], [0, 3, 0], [0, 0, 0]]
    """
    bg = background(grid)
    if colour == bg or not (grid == colour).any():
        raise DSLError(f"colour {colour} is absent or the background")
    return np.where(grid == colour, grid, np.uint8(bg))


@primitive(_foreground_options)
def remove_colour(grid: Grid, colour: int) -> Grid:
    """Turn every cell of `colour` into background.

    >>> remove_colour(np.array([[0, 2, 3], [0, 3, 0], [0, 0, 0]], dtype=np.uint8), 3).tolist()
    [[0, 2, 0], [0, 0, 0], [0, 0, 0]]
    """
    bg = background(grid)
    mask = grid == colour
    if colour == bg or not mask.any():
        raise DSLError(f"colour {colour} is absent or the background")
    out = grid.copy()
    out[mask] = bg
    return out


def _background_options(ctx: Context) -> list[tuple]:
    """Output colours, so the new background is one the outputs show."""
    return [(c,) for c in ctx.output_colours]


@primitive(_background_options)
def set_background(grid: Grid, colour: int) -> Grid:
    """Repaint the background (the most frequent colour) as `colour`.

    >>> set_background(np.array([[0, 0], [0, 4]], dtype=np.uint8), 8).tolist()
    [[8, 8], [8, 4]]
    """
    bg = background(grid)
    if colour == bg:
        raise DSLError("that colour is the background already")
    out = grid.copy()
    out[grid == bg] = colour
    return out


@primitive()
def binarize(grid: Grid) -> Grid:
    """Non-background cells to 1, background to 0 (a final `recolor` then paints the two).

    >>> binarize(np.array([[0, 3], [5, 0], [0, 0]], dtype=np.uint8)).tolist()
    [[0, 1], [1, 0], [0, 0]]
    """
    return (grid != background(grid)).astype(np.uint8)


@primitive()
def invert_mask(grid: Grid) -> Grid:
    """Background cells to 1, every other cell to 0: the shape's negative.

    >>> invert_mask(np.array([[0, 3], [5, 0], [0, 0]], dtype=np.uint8)).tolist()
    [[1, 0], [0, 1], [1, 1]]
    """
    return (grid == background(grid)).astype(np.uint8)


def _foreground_counts(grid: Grid) -> np.ndarray:
    """Cell count per colour, the background's set to 0; DSLError when only background is there."""
    counts = np.bincount(grid.ravel(), minlength=10)
    counts[background(grid)] = 0
    if not counts.any():
        raise DSLError("the grid is all background")
    return counts


@primitive()
def most_colour(grid: Grid) -> Grid:
    """A 1x1 grid of the most frequent non-background colour (a tie goes to the lowest).

    >>> most_colour(np.array([[0, 0, 0], [2, 3, 3], [0, 0, 0]], dtype=np.uint8)).tolist()
    [[3]]
    """
    return np.array([[np.argmax(_foreground_counts(grid))]], dtype=np.uint8)


@primitive()
def least_colour(grid: Grid) -> Grid:
    """A 1x1 grid of the least frequent non-background colour present (a tie goes to the lowest).

    >>> least_colour(np.array([[0, 0, 0], [2, 3, 3], [0, 0, 0]], dtype=np.uint8)).tolist()
    [[2]]
    """
    counts = _foreground_counts(grid)
    counts[counts == 0] = grid.size + 1
    return np.array([[np.argmin(counts)]], dtype=np.uint8)


@primitive([("column",), ("row",)])
def colour_count_bar(grid: Grid, axis: str) -> Grid:
    """The non-background colours, most frequent first, as a one-wide column or row.

    >>> colour_count_bar(np.array([[0, 2, 3], [3, 3, 0], [0, 0, 0]], dtype=np.uint8), "row").tolist()
    [[3, 2]]
    """
    counts = _foreground_counts(grid)
    present = np.flatnonzero(counts)
    # Stable sort on the negated counts: a tie keeps the lower colour first.
    order = present[np.argsort(-counts[present], kind="stable")].astype(np.uint8)
    return order[:, None] if axis == "column" else order[None, :]


@primitive()
def swap_colours(grid: Grid) -> Grid:
    """Exchange the two colours of a two-colour grid; DSLError for any other number of colours.

    >>> swap_colours(np.array([[4, 5], [5, 5]], dtype=np.uint8)).tolist()
    [[5, 4], [4, 4]]
    """
    present = np.flatnonzero(np.bincount(grid.ravel(), minlength=10))
    if present.size != 2:
        raise DSLError(f"the grid has {present.size} colours, not two")
    low, high = present
    return np.where(grid == low, np.uint8(high), np.uint8(low))


@primitive()
def flatten_foreground(grid: Grid) -> Grid:
    """The non-zero cells in reading order, as one row (a count shown as a bar).

    Zero, not the most frequent colour, is the background here: in the small grids this serves
    the foreground often outnumbers it (d631b094).

    >>> flatten_foreground(np.array([[0, 2, 0], [3, 0, 0], [0, 2, 0]], dtype=np.uint8)).tolist()
    [[2, 3, 2]]
    """
    cells = grid[grid != 0]
    if cells.size == 0 or cells.size > 30:
        raise DSLError(f"{cells.size} non-zero cells make no row of 1..30")
    return cells[None, :].copy()
