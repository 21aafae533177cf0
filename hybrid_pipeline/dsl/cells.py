"""Per-cell rules read off the demonstrations: each cell's new colour from its own colour and one
or two facts about where it sits.

The inferred `cell_rule` keys every cell by its colour plus up to two *features* of its place
(`FEATURES`): its row or column counted modulo 2 or 3 from either edge, the first colour met
looking along one of the 8 directions (or either way along a row or column), how many of its
neighbours are filled and with which colour most, its ring (distance to the nearest edge),
whether it is enclosed, whether its row or column is the middle one or all one colour, the size
of its object and whether that object is the largest or the smallest, and where its row or
column lies among separator lines, and which half of its run of filled cells down its column or
along its row it is in. One table then explains, for example, "every third column
turns 6" (ba26e723), "a cell between a 2 on its left and an 8 above turns 4" (bdad9b1f),
"alternate cells from the right turn 3" (d406998b) or "the empty cells between separator lines
take a colour by their band: 6 in the centre, 2 above it" (272f95fa). Cells may also be keyed by
their place alone, the table then saying "keep the cell's colour" or a colour, so that one rule
serves every colour (keep the middle column only: d23f8c26). The inference takes the first
feature set, in `FEATURES` order, singles before pairs, place before colour, whose table every
demonstration cell agrees with.

The inferred `cell_copy` paints the cells of some colours with the colour a feature names there
(the first cell of the row, the colour met looking up, ...): "every 5 takes its row's first colour"
(c9f8e694) then holds for colours no demonstration showed, where a table could only list the ones
it saw.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable, Sequence

import numpy as np

from hybrid_pipeline.dsl.grids import KEEP, NEIGHBOURS, background, label, paint_by_key
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
        return sum(filled[1 + dy:1 + dy + rows, 1 + dx:1 + dx + cols] for dy, dx in NEIGHBOURS[8 if diagonal else 4])
    return feature


def _middle(axis: int) -> Callable[[Grid], np.ndarray]:
    """1 in the middle row (axis 0) or column (axis 1), both middle ones of an even side."""
    def feature(grid: Grid) -> np.ndarray:
        side = grid.shape[axis]
        codes = (np.abs(2 * np.arange(side) - (side - 1)) <= 1).astype(np.int64)
        return np.broadcast_to(codes.reshape((-1, 1) if axis == 0 else (1, -1)), grid.shape)
    return feature


def _uniform(axis: int) -> Callable[[Grid], np.ndarray]:
    """1 where the cell's row (axis 0) or column (axis 1) is all one colour."""
    def feature(grid: Grid) -> np.ndarray:
        line = grid[:, :1] if axis == 0 else grid[:1, :]
        same = (grid == line).all(axis=1 - axis, keepdims=True)
        return np.broadcast_to(same.astype(np.int64), grid.shape)
    return feature


def _neighbour_colour(diagonal: bool) -> Callable[[Grid], np.ndarray]:
    """The colour other than the background that most of the cell's neighbours (4, or 8 with
    `diagonal`) have, the lowest on a tie; 10 where none has one."""
    def feature(grid: Grid) -> np.ndarray:
        rows, cols = grid.shape
        bg = background(grid)
        padded = np.pad(grid.astype(np.int64), 1, constant_values=-1)
        counts = np.zeros((10, rows, cols), dtype=np.int64)
        for dy, dx in NEIGHBOURS[8 if diagonal else 4]:
            near = padded[1 + dy:1 + dy + rows, 1 + dx:1 + dx + cols]
            for colour in range(10):
                if colour != bg:
                    counts[colour] += near == colour
        best = counts.argmax(axis=0)
        return np.where(counts.max(axis=0) > 0, best, _NONE)
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


def _object_size(grid: Grid) -> np.ndarray:
    """The size of the cell's object (4 neighbours, one colour), at most 15; 0 on the background."""
    labels, n = label(grid, diagonal=False, multicolour=False, bg=background(grid))
    sizes = np.bincount(labels.ravel(), minlength=n + 1).clip(max=_BASE - 1)
    sizes[0] = 0
    return sizes[labels].astype(np.int64)


def _size_rank(grid: Grid) -> np.ndarray:
    """1 in the largest objects (8 neighbours, any colours), 2 in the smallest, 3 in the others,
    0 on the background."""
    labels, n = label(grid, diagonal=True, multicolour=True, bg=background(grid))
    if n == 0:
        return np.zeros(grid.shape, dtype=np.int64)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    codes = np.where(sizes == sizes.max(), 1, np.where(sizes == sizes.min(), 2, 3))
    return np.concatenate(([0], codes))[labels].astype(np.int64)


def _band(axis: int) -> Callable[[Grid], np.ndarray]:
    """Where the cell's row (axis 0) or column (axis 1) lies among full lines of one colour other
    than the background: 0 before the first, 2 after the last, 1 between, 3 on a line; 0 in a
    grid without such lines."""
    def feature(grid: Grid) -> np.ndarray:
        first = grid[:, :1] if axis == 0 else grid[:1, :]
        lines = ((grid == first).all(axis=1 - axis) & (first.ravel() != background(grid)))
        seen = np.cumsum(lines)
        codes = np.where(lines, 3, np.where(seen == 0, 0, np.where(seen == seen[-1], 2, 1)))
        if not seen[-1]:
            codes = np.zeros_like(codes)
        return np.broadcast_to(codes.reshape((-1, 1) if axis == 0 else (1, -1)), grid.shape).astype(np.int64)
    return feature


def _run_half(axis: int) -> Callable[[Grid], np.ndarray]:
    """Where the cell sits in its run of filled cells down its column (axis 0) or along its row
    (axis 1): 1 in the first half, 2 at the middle of an odd run, 3 in the second half; 0 on the
    background."""
    def feature(grid: Grid) -> np.ndarray:
        lines = grid.T if axis == 1 else grid
        filled = lines != background(grid)
        codes = np.zeros(lines.shape, dtype=np.int64)
        for col in range(lines.shape[1]):
            padded = np.concatenate(([False], filled[:, col], [False]))
            edges = np.flatnonzero(padded[1:] != padded[:-1])
            for start, stop in zip(edges[0::2], edges[1::2]):
                twice = 2 * np.arange(stop - start) - (stop - start - 1)  # < 0 first half, 0 middle
                codes[start:stop, col] = np.sign(twice) + 2
        return codes.T if axis == 1 else codes
    return feature


def _head(axis: int) -> Callable[[Grid], np.ndarray]:
    """The colour of the first cell of the cell's row (axis 0: its left end) or column (axis 1:
    its top)."""
    def feature(grid: Grid) -> np.ndarray:
        first = grid[:, :1] if axis == 0 else grid[:1, :]
        return np.broadcast_to(first, grid.shape).astype(np.int64)
    return feature


# name -> per-cell codes (each below _BASE), in the order the inference tries them.
FEATURES: dict[str, Callable[[Grid], np.ndarray]] = {
    "row%2": _modulo(0, 2, False), "col%2": _modulo(1, 2, False),
    "row%2 from end": _modulo(0, 2, True), "col%2 from end": _modulo(1, 2, True),
    "row%3": _modulo(0, 3, False), "col%3": _modulo(1, 3, False),
    "row%3 from end": _modulo(0, 3, True), "col%3 from end": _modulo(1, 3, True),
    "neighbours": _filled_neighbours(False), "neighbours8": _filled_neighbours(True),
    "neighbour colour": _neighbour_colour(False), "neighbour colour8": _neighbour_colour(True),
    "up": _ray(-1, 0), "down": _ray(1, 0), "left": _ray(0, -1), "right": _ray(0, 1),
    "up or down": _either(_ray(-1, 0), _ray(1, 0)), "left or right": _either(_ray(0, -1), _ray(0, 1)),
    "up-left": _ray(-1, -1), "up-right": _ray(-1, 1), "down-left": _ray(1, -1), "down-right": _ray(1, 1),
    "ring": _ring, "enclosed": _enclosed,
    "middle row": _middle(0), "middle col": _middle(1),
    "row uniform": _uniform(0), "col uniform": _uniform(1),
    "object size": _object_size, "size rank": _size_rank, "row band": _band(0), "col band": _band(1),
    "col run half": _run_half(0), "row run half": _run_half(1), "row head": _head(0), "col head": _head(1),
}

# How a cell is keyed: by its place alone (the table says a colour or 10, keep the cell's own:
# one rule for every colour), or by its colour and its place (the finer key).
_KEYINGS = ("place", "colour")
# In `cell_copy`'s table: the cell takes the colour its feature names.
COPY = 11
# The features whose codes are colours (10: none met), which `cell_copy` may paint with.
COLOUR_FEATURES = ("up", "down", "left", "right", "up or down", "left or right", "up-left", "up-right",
                   "down-left", "down-right", "neighbour colour", "neighbour colour8", "row head", "col head")


def _keys(own: np.ndarray, codes: Sequence[np.ndarray], by: str) -> np.ndarray:
    """Per cell: (its colour, keyed "colour"; 0, keyed "place") + 10 * (the first feature's code +
    16 * the second's)."""
    keys = own.astype(np.int64) if by == "colour" else np.zeros(own.shape, dtype=np.int64)
    scale = 10
    for code in codes:
        keys = keys + scale * code
        scale *= _BASE
    return keys


def _changed_cells(grids: Sequence[Grid], targets: Sequence[Grid]) -> tuple[np.ndarray, np.ndarray] | None:
    """Every demonstration cell's colour before and after, flat; None when a per-cell rule has
    nothing to explain: one demonstration, shapes that differ, nothing that changes, or a plain
    colour map (`recolor` does that)."""
    if len(grids) < 2 or any(g.shape != t.shape for g, t in zip(grids, targets)):
        return None
    if all(np.array_equal(g, t) for g, t in zip(grids, targets)):
        return None
    outs = np.concatenate([t.ravel() for t in targets]).astype(np.int64)
    own = np.concatenate([g.ravel() for g in grids]).astype(np.int64)
    if _table(own, outs, own, limit=outs.size, keep=False) is not None:
        return None
    return own, outs


def _infer_cell_rule(grids: Sequence[Grid], targets: Sequence[Grid]) -> tuple | None:
    """The first feature set (see the module docstring) whose key -> colour table every
    demonstration cell agrees with. Refused when shapes differ, nothing changes, a plain colour
    map explains the change (`recolor` does that), there is a single demonstration, or the table
    has more than a quarter as many entries as there are demonstration cells (it would memorise)."""
    cells = _changed_cells(grids, targets)
    if cells is None:
        return None
    own, outs = cells
    codes = {name: np.concatenate([fn(g).ravel() for g in grids]) for name, fn in FEATURES.items()}
    names = list(FEATURES)
    for chosen in [(n,) for n in names] + list(combinations(names, 2)):
        for by in _KEYINGS:
            keys = _keys(own, [codes[name] for name in chosen], by)
            table = _table(keys, outs, own, limit=outs.size // 4, keep=by == "place")
            if table is not None:
                return chosen, table, by
    return None


def _copy_table(own: np.ndarray, outs: np.ndarray, named: np.ndarray) -> dict | None:
    """own colour -> a colour or COPY (every such cell takes the colour `named` there) for each
    colour whose cells change, when every demonstration cell agrees and one colour at least copies."""
    table = {}
    for colour in np.unique(own).tolist():
        at = own == colour
        got = np.unique(outs[at])
        if (got == colour).all():
            continue
        if got.size == 1:
            table[colour] = int(got[0])
        elif (outs[at] == named[at]).all():
            table[colour] = COPY
        else:
            return None
    return table if COPY in table.values() else None


def _table(keys: np.ndarray, outs: np.ndarray, own: np.ndarray, *, limit: int, keep: bool) -> dict | None:
    """key -> colour when every key has one output colour (or, with `keep`, 10 for a key whose
    cells all keep their colour) and there are at most `limit` keys."""
    known, inverse = np.unique(keys, return_inverse=True)
    if known.size > limit:
        return None
    low = np.full(known.size, KEEP, dtype=np.int64)
    high = np.full(known.size, -1, dtype=np.int64)
    np.minimum.at(low, inverse, outs)
    np.maximum.at(high, inverse, outs)
    right, value = low == high, low
    if keep:
        keeps = np.bincount(inverse, weights=outs != own, minlength=known.size) == 0
        right, value = right | keeps, np.where(keeps, KEEP, low)
    if not right.all():
        return None  # some key needs two colours
    return dict(zip(known.tolist(), value.tolist()))


@primitive(infer=_infer_cell_rule, keeps_shape=True, max_step=1)
def cell_rule(grid: Grid, features: tuple, table: dict, by: str = "colour") -> Grid:
    """Each cell's colour from `table`, keyed by (`by` "colour": its colour; "place": 0) + 10 * (its
    first feature's code + 16 * its second's); the features are named in `FEATURES`. 10 in the
    table keeps the cell's colour. DSLError on a key no demonstration showed.

    >>> cell_rule(np.array([[1, 1, 1, 1]], dtype=np.uint8), ("col%2",), {1: 1, 11: 6}).tolist()
    [[1, 6, 1, 6]]
    >>> cell_rule(np.array([[1, 2, 3]], dtype=np.uint8), ("middle col",), {0: 0, 10: 10}, "place").tolist()
    [[0, 2, 0]]
    """
    unknown = [name for name in features if name not in FEATURES]
    if unknown or len(features) > 2:
        raise DSLError(f"cell features must be one or two of {', '.join(FEATURES)}, got {features!r}")
    if by not in _KEYINGS:
        raise DSLError(f"cells are keyed by one of {', '.join(_KEYINGS)}, got {by!r}")
    keys = _keys(grid, [FEATURES[name](grid) for name in features], by)
    return paint_by_key(grid, keys, table, unseen="a cell whose place the demonstrations never showed")


def _infer_cell_copy(grids: Sequence[Grid], targets: Sequence[Grid]) -> tuple | None:
    """The first of `COLOUR_FEATURES` whose colour the changed cells of some colours take, each
    other colour keeping or taking one colour. Refused as `cell_rule` refuses (shapes, nothing
    changes, a plain colour map, one demonstration)."""
    cells = _changed_cells(grids, targets)
    if cells is None:
        return None
    own, outs = cells
    for name in COLOUR_FEATURES:
        table = _copy_table(own, outs, np.concatenate([FEATURES[name](g).ravel() for g in grids]))
        if table is not None:
            return name, table
    return None


@primitive(infer=_infer_cell_copy, keeps_shape=True, max_step=1)
def cell_copy(grid: Grid, feature: str, table: dict) -> Grid:
    """The cells of each colour in `table` take the colour it says, or for 11 the colour `feature`
    names there (one of `COLOUR_FEATURES`, such as the first cell of its row); other colours keep.
    "Every 5 takes its row's first colour" (c9f8e694) holds for colours no demonstration named.
    DSLError where a cell to paint sees no colour by its feature.

    >>> cell_copy(np.array([[3, 5, 5], [7, 0, 5]], dtype=np.uint8), "row head", {5: 11}).tolist()
    [[3, 3, 3], [7, 0, 7]]
    """
    if feature not in COLOUR_FEATURES:
        raise DSLError(f"a cell copies one of {', '.join(COLOUR_FEATURES)}, got {feature!r}")
    named = FEATURES[feature](grid)
    out = grid.copy()
    for colour, value in table.items():
        at = grid == colour
        if value == COPY and (named[at] > 9).any():
            raise DSLError(f"a cell to paint sees no colour {feature}")
        out[at] = named[at] if value == COPY else value
    return out
