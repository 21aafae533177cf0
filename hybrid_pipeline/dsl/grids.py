"""Grid facts the primitives share: background colour, connected components, bounding boxes.

Helpers, not primitives: they return masks and objects, not grids, so the search never calls them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Callable, TypeVar

import numpy as np

from hybrid_pipeline.dsl.registry import DSLError, Grid


def background(grid: Grid) -> int:
    """Black (0) when it covers at least a third of the grid, else the most frequent colour (a tie
    to the lowest). ARC draws on black far more often than not, and shapes on a small black grid
    often cover more of it than the black does.

    >>> background(np.array([[0, 5, 5], [5, 5, 1]], dtype=np.uint8))
    5
    >>> background(np.array([[0, 5, 5], [5, 0, 1]], dtype=np.uint8))
    0
    """
    if 3 * (grid.size - np.count_nonzero(grid)) >= grid.size:  # the common case, without a histogram
        return 0
    return int(np.argmax(np.bincount(grid.ravel(), minlength=10)))


T = TypeVar("T")


def per_grid(fn: Callable[[Grid], T]) -> Callable[[Grid], T]:
    """Memoise `fn(grid)` by the grid's content. For the part of a primitive that does not depend
    on its option (the cells a fill would paint, whatever the colour), which the search asks for
    once per option. What `fn` returns is shared: return read-only arrays."""

    @lru_cache(maxsize=2048)
    def on_bytes(data: bytes, shape: tuple[int, int]) -> T:
        return fn(np.frombuffer(data, dtype=np.uint8).reshape(shape))

    @wraps(fn)
    def cached(grid: Grid) -> T:
        return on_bytes(grid.tobytes(), grid.shape)

    return cached


def frozen(mask: np.ndarray) -> np.ndarray:
    """`mask`, made read-only (for values `per_grid` shares)."""
    mask.setflags(write=False)
    return mask


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), bottom/right exclusive, of the True cells; DSLError when none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        raise DSLError("empty mask has no bounding box")
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


@dataclass(frozen=True, eq=False)
class Obj:
    """A connected component: its cells (a mask of the whole grid) and where it sits."""

    mask: np.ndarray  # bool [rows, cols] of the whole grid
    top: int
    left: int
    bottom: int
    right: int
    colour: int  # its most frequent colour (the only one for a single-colour object)
    size: int  # cells

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def cut(self, grid: Grid, fill: int) -> Grid:
        """The object's bounding box from `grid`, cells outside the object set to `fill`."""
        box = grid[self.top:self.bottom, self.left:self.right].copy()
        box[~self.mask[self.top:self.bottom, self.left:self.right]] = fill
        return box


MAX_INDEX = 1 << 30
_N4 = ((-1, 0), (1, 0), (0, -1), (0, 1))
_N8 = _N4 + ((-1, -1), (-1, 1), (1, -1), (1, 1))
# (dy, dx) of a cell's 4 or 8 neighbours: up, down, left, right, then the diagonals.
NEIGHBOURS = {4: _N4, 8: _N8}
# A table value that keeps the cell's colour (`paint_by_key`).
KEEP = 10


def paint_by_key(grid: Grid, keys: np.ndarray, table: dict, *, unseen: str) -> Grid:
    """Each cell's colour from `table[its key]` (`keys` [rows, cols]; KEEP leaves the cell's
    colour); DSLError(`unseen`) for a key the table lacks, or an empty table."""
    if not table:
        raise DSLError("an empty table")
    known = np.array(sorted(table), dtype=np.int64)
    at = np.searchsorted(known, keys).clip(max=known.size - 1)
    if not (known[at] == keys).all():
        raise DSLError(unseen)
    colours = np.array([table[k] for k in known.tolist()], dtype=np.uint8)[at]
    return np.where(colours == KEEP, grid, colours).astype(np.uint8)


def label(grid: Grid, *, diagonal: bool, multicolour: bool, bg: int | None) -> tuple[np.ndarray, int]:
    """Component labels [rows, cols] (0 for background, 1..n) and n.

    Cells join when they touch (4 neighbours, or 8 with `diagonal`) and share a colour (any
    non-background colour with `multicolour`). `bg` None: every colour forms objects.
    """
    return _label(grid.tobytes(), grid.shape, diagonal, multicolour, -1 if bg is None else bg)


@lru_cache(maxsize=4096)
def _label(data: bytes, shape: tuple[int, int], diagonal: bool, multicolour: bool, bg: int):
    grid = np.frombuffer(data, dtype=np.uint8).reshape(shape)
    rows, cols = shape
    labels = np.zeros(shape, dtype=np.int32)
    steps = _N8 if diagonal else _N4
    flat = grid.tolist()
    lab = labels.tolist()
    n = 0
    for r in range(rows):
        for c in range(cols):
            colour = flat[r][c]
            if colour == bg or lab[r][c]:
                continue
            n += 1
            lab[r][c] = n
            stack = [(r, c)]
            while stack:
                y, x = stack.pop()
                for dy, dx in steps:
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < rows and 0 <= nx < cols and not lab[ny][nx]:
                        other = flat[ny][nx]
                        if other != bg and (multicolour or other == colour):
                            lab[ny][nx] = n
                            stack.append((ny, nx))
    labels = np.array(lab, dtype=np.int32)
    labels.setflags(write=False)
    return labels, n


def objects(grid: Grid, *, diagonal: bool = False, multicolour: bool = False,
            bg: int | None = -2) -> list[Obj]:
    """The grid's objects in reading order of their first cell. `bg` -2 (default): the grid's
    background colour; None: every colour, background included, forms objects."""
    if bg == -2:
        bg = background(grid)
    labels, n = label(grid, diagonal=diagonal, multicolour=multicolour, bg=bg)
    if n == 0:
        return []
    ys, xs = np.nonzero(labels)
    ids = labels[ys, xs] - 1
    # Boxes and sizes of every object at once (one pass, not one mask scan per object).
    top = np.full(n, MAX_INDEX); left = np.full(n, MAX_INDEX)
    bottom = np.zeros(n, dtype=np.int64); right = np.zeros(n, dtype=np.int64)
    np.minimum.at(top, ids, ys); np.minimum.at(left, ids, xs)
    np.maximum.at(bottom, ids, ys + 1); np.maximum.at(right, ids, xs + 1)
    sizes = np.bincount(ids, minlength=n)
    colours = np.bincount(ids * 10 + grid[ys, xs], minlength=10 * n).reshape(n, 10).argmax(axis=1)
    return [Obj(labels == k + 1, int(top[k]), int(left[k]), int(bottom[k]), int(right[k]), int(colours[k]),
                int(sizes[k])) for k in range(n)]
