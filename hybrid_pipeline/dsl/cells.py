"""Per-cell rules read off the demonstrations: each cell's new colour from its own colour and one
or two facts about where it sits.

The inferred `cell_rule` keys every cell by its colour plus up to two *features* of its place
(`FEATURES`): its row or column counted modulo 2 or 3 from either edge, the first colour met
looking along one of the 8 directions (or either way along a row or column), how many of its neighbours are filled, its ring (distance to
the nearest edge), and whether it is enclosed. One table then explains, for example, "every third
column turns 6" (ba26e723), "a cell between a 2 on its left and an 8 above turns 4" (bdad9b1f) or
"alternate cells from the right turn 3" (d406998b). The inference takes the first feature set, in
`FEATURES` order, singles before pairs, whose table every demonstration cell agrees with.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable, Sequence

import numpy as np

from hybrid_pipeline.dsl.grids import background
from hybrid_pipeline.dsl.registry import DSLError, Grid, primitive

# A ray that leaves the grid without meeting a filled cell.
_NONE = 10
# Feature codes are below this, so two of them and a colour pack into one key.
_BASE = 16


def _modulo(axis: int, period: int, from_end: bool) -> Callable[[Grid], np.ndarray]:
    def feature(grid: Grid) -> np.ndarray:
        index = np.arange(grid.shape[axis])
        if from_end:
            index = index[::-1]
        codes = (index % period).reshape((-1, 1) if axis == 0 else (1, -1))
        return np.broadcast_to(codes, grid.shape)
    return feature


def _ray(dy: int, dx: int) -> Callable[[Grid], np.ndarray]:
    """The first colour other than the background met stepping (dy, dx) from each cell, itself not
    counted; 10 where the ray leaves the grid first."""
    def feature(grid: Grid) -> np.ndarray:
        rows, cols = grid.shape
        filled = grid != background(grid)
        out = np.full(grid.shape, _NONE, dtype=np.int64)
        for k in range(1, max(rows, cols)):
            oy, ox = k * dy, k * dx
            if abs(oy) >= rows or abs(ox) >= cols:
                break
            dst = np.s_[max(0, -oy):rows - max(0, oy), max(0, -ox):cols - max(0, ox)]
            src = np.s_[max(0, oy):rows - max(0, -oy), max(0, ox):cols - max(0, -ox)]
            view = out[dst]
            hit = (view == _NONE) & filled[src]
            view[hit] = grid[src][hit]
        return out
    return feature


def _either(first: Callable[[Grid], np.ndarray], second: Callable[[Grid], np.ndarray]) -> Callable[[Grid], np.ndarray]:
    """The `first` ray's colour, or the `second`'s where the first meets nothing (a line that may
    lie on either side)."""
    def feature(grid: Grid) -> np.ndarray:
        one = first(grid)
        return np.where(one == _NONE, second(grid), one)
    return feature


def _filled_neighbours(diagonal: bool) -> Callable[[Grid], np.ndarray]:
    def feature(grid: Grid) -> np.ndarray:
        filled = np.pad(grid != background(grid), 1).astype(np.int64)
        rows, cols = grid.shape
        steps = [(-1, 0), (1, 0), (0, -1), (0, 1)] + ([(-1, -1), (-1, 1), (1, -1), (1, 1)] if diagonal else [])
        return sum(filled[1 + dy:1 + dy + rows, 1 + dx:1 + dx + cols] for dy, dx in steps)
    return feature


def _ring(grid: Grid) -> np.ndarray:
    """Distance to the nearest edge (0 on the border), at most 9."""
    rows, cols = grid.shape
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    return np.minimum(np.minimum(r, rows - 1 - r), np.minimum(c, cols - 1 - c)).clip(max=9)


def _enclosed(grid: Grid) -> np.ndarray:
    """1 for a background cell that no path of background cells (4 neighbours) joins to the edge."""
    empty = grid == background(grid)
    outside = np.zeros_like(empty)
    outside[0, :], outside[-1, :], outside[:, 0], outside[:, -1] = empty[0, :], empty[-1, :], empty[:, 0], empty[:, -1]
    while True:
        grown = outside.copy()
        grown[1:, :] |= outside[:-1, :]
        grown[:-1, :] |= outside[1:, :]
        grown[:, 1:] |= outside[:, :-1]
        grown[:, :-1] |= outside[:, 1:]
        grown &= empty
        if np.array_equal(grown, outside):
            return (empty & ~outside).astype(np.int64)
        outside = grown


# name -> per-cell codes (each below _BASE), in the order the inference tries them.
FEATURES: dict[str, Callable[[Grid], np.ndarray]] = {
    "row%2": _modulo(0, 2, False), "col%2": _modulo(1, 2, False),
    "row%2 from end": _modulo(0, 2, True), "col%2 from end": _modulo(1, 2, True),
    "row%3": _modulo(0, 3, False), "col%3": _modulo(1, 3, False),
    "row%3 from end": _modulo(0, 3, True), "col%3 from end": _modulo(1, 3, True),
    "neighbours": _filled_neighbours(False), "neighbours8": _filled_neighbours(True),
    "up": _ray(-1, 0), "down": _ray(1, 0), "left": _ray(0, -1), "right": _ray(0, 1),
    "up or down": _either(_ray(-1, 0), _ray(1, 0)), "left or right": _either(_ray(0, -1), _ray(0, 1)),
    "up-left": _ray(-1, -1), "up-right": _ray(-1, 1), "down-left": _ray(1, -1), "down-right": _ray(1, 1),
    "ring": _ring, "enclosed": _enclosed,
}


def _keys(grid: Grid, features: Sequence[str]) -> np.ndarray:
    """Per cell: its colour + 10 * (first feature's code + 16 * the second's)."""
    keys = grid.astype(np.int64)
    scale = 10
    for name in features:
        keys = keys + scale * FEATURES[name](grid)
        scale *= _BASE
    return keys


def _infer_cell_rule(grids: Sequence[Grid], targets: Sequence[Grid]) -> tuple | None:
    """The first feature set (see the module docstring) whose key -> colour table every
    demonstration cell agrees with. Refused when shapes differ, nothing changes, a plain colour
    map explains the change (`recolor` does that), there is a single demonstration, or the table
    has more than a quarter as many entries as there are demonstration cells (it would memorise)."""
    if len(grids) < 2 or any(g.shape != t.shape for g, t in zip(grids, targets)):
        return None
    if all(np.array_equal(g, t) for g, t in zip(grids, targets)):
        return None
    outs = np.concatenate([t.ravel() for t in targets]).astype(np.int64)
    own = np.concatenate([g.ravel() for g in grids]).astype(np.int64)
    if _table(own, outs, limit=outs.size) is not None:
        return None
    codes = {name: np.concatenate([fn(g).ravel() for g in grids]) for name, fn in FEATURES.items()}
    names = list(FEATURES)
    for chosen in [(n,) for n in names] + list(combinations(names, 2)):
        keys = own.copy()
        scale = 10
        for name in chosen:
            keys += scale * codes[name]
            scale *= _BASE
        table = _table(keys, outs, limit=outs.size // 4)
        if table is not None:
            return chosen, table
    return None


def _table(keys: np.ndarray, outs: np.ndarray, *, limit: int) -> dict | None:
    """key -> colour when every key has one output colour and there are at most `limit` keys."""
    known, first = np.unique(keys, return_inverse=True)
    if known.size > limit:
        return None
    colour = np.zeros(known.size, dtype=np.int64)
    colour[first] = outs
    if not np.array_equal(colour[first], outs):
        return None  # some key needs two colours
    return dict(zip(known.tolist(), colour.tolist()))


@primitive(infer=_infer_cell_rule, keeps_shape=True, max_step=1)
def cell_rule(grid: Grid, features: tuple, table: dict) -> Grid:
    """Each cell's colour from `table`, keyed by its colour + 10 * (its first feature's code + 16 *
    its second's); the features are named in `FEATURES`. DSLError on a key no demonstration showed.

    >>> cell_rule(np.array([[1, 1, 1, 1]], dtype=np.uint8), ("col%2",), {1: 1, 11: 6}).tolist()
    [[1, 6, 1, 6]]
    """
    if not table:
        raise DSLError("an empty table")
    unknown = [name for name in features if name not in FEATURES]
    if unknown or len(features) > 2:
        raise DSLError(f"cell features must be one or two of {', '.join(FEATURES)}, got {features!r}")
    keys = _keys(grid, features)
    known = np.array(sorted(table), dtype=np.int64)
    at = np.searchsorted(known, keys).clip(max=known.size - 1)
    if not (known[at] == keys).all():
        raise DSLError("a cell whose place the demonstrations never showed")
    return np.array([table[k] for k in known.tolist()], dtype=np.uint8)[at]
