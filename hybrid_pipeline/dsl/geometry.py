"""Geometry primitives: where cells go, never which colour they are.

Covers the seven non-identity dihedral transforms, one-cell shifts, cropping to content, to the
box a colour spans or to a fixed window read off the demonstrations, dropping a frame, integer up-
and downscaling (upscaling also by the number of colours), cutting a repeating grid down to its
unit, plain, mirrored and self-similar tiling, concatenating a grid with its mirror, the four
halves, the first third, and tiling a grid out to a fixed shape read off the demonstrations.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hybrid_pipeline.dsl.grids import background, bbox
from hybrid_pipeline.dsl.registry import MAX_SIDE, Context, DSLError, Grid, primitive


def _fits(rows: int, cols: int) -> None:
    if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE):
        raise DSLError(f"a {rows}x{cols} grid is outside ARC's 1..{MAX_SIDE} sides")


# Dihedral transforms. ascontiguousarray copies the numpy view, so no result shares memory with
# its input.

@primitive()
def rotate_90(grid: Grid) -> Grid:
    """Rotate a quarter turn clockwise.

    >>> rotate_90(np.array([[1, 2], [3, 4]], dtype=np.uint8)).tolist()
    [[3, 1], [4, 2]]
    """
    return np.ascontiguousarray(np.rot90(grid, -1))


@primitive()
def rotate_180(grid: Grid) -> Grid:
    """Rotate a half turn.

    >>> rotate_180(np.array([[1, 2], [3, 4]], dtype=np.uint8)).tolist()
    [[4, 3], [2, 1]]
    """
    return np.ascontiguousarray(grid[::-1, ::-1])


@primitive()
def rotate_270(grid: Grid) -> Grid:
    """Rotate a quarter turn counter-clockwise.

    >>> rotate_270(np.array([[1, 2], [3, 4]], dtype=np.uint8)).tolist()
    [[2, 4], [1, 3]]
    """
    return np.ascontiguousarray(np.rot90(grid, 1))


@primitive()
def flip_horizontal(grid: Grid) -> Grid:
    """Mirror left to right (each row reversed).

    >>> flip_horizontal(np.array([[1, 2], [3, 4]], dtype=np.uint8)).tolist()
    [[2, 1], [4, 3]]
    """
    return np.ascontiguousarray(grid[:, ::-1])


@primitive()
def flip_vertical(grid: Grid) -> Grid:
    """Mirror top to bottom (row order reversed).

    >>> flip_vertical(np.array([[1, 2], [3, 4]], dtype=np.uint8)).tolist()
    [[3, 4], [1, 2]]
    """
    return np.ascontiguousarray(grid[::-1, :])


@primitive()
def transpose(grid: Grid) -> Grid:
    """Mirror across the main diagonal (rows become columns).

    >>> transpose(np.array([[1, 2], [3, 4]], dtype=np.uint8)).tolist()
    [[1, 3], [2, 4]]
    """
    return np.ascontiguousarray(grid.T)


@primitive()
def antitranspose(grid: Grid) -> Grid:
    """Mirror across the anti-diagonal (top-right to bottom-left).

    >>> antitranspose(np.array([[1, 2], [3, 4]], dtype=np.uint8)).tolist()
    [[4, 2], [3, 1]]
    """
    return np.ascontiguousarray(grid[::-1, ::-1].T)


# Shifts: the grid keeps its shape, the cells pushed off are lost and the background fills in.

_SHIFTS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


@primitive([(d,) for d in _SHIFTS])
def shift(grid: Grid, direction: str) -> Grid:
    """Move every cell one step ("up", "down", "left", "right"); the background fills the gap.

    >>> shift(np.array([[1, 0], [0, 2]], dtype=np.uint8), "right").tolist()
    [[0, 1], [0, 0]]
    """
    dy, dx = _SHIFTS[direction]
    rows, cols = grid.shape
    out = np.full_like(grid, background(grid))
    out[max(dy, 0):rows + min(dy, 0), max(dx, 0):cols + min(dx, 0)] = \
        grid[max(-dy, 0):rows + min(-dy, 0), max(-dx, 0):cols + min(-dx, 0)]
    return out


@primitive()
def crop_to_content(grid: Grid) -> Grid:
    """Cut the bounding box of the non-background cells.

    >>> crop_to_content(np.array([[0, 0, 0], [0, 3, 0], [0, 0, 4]], dtype=np.uint8)).tolist()
    [[3, 0], [0, 4]]
    """
    top, left, bottom, right = bbox(grid != background(grid))
    return grid[top:bottom, left:right].copy()


def _input_colour_options(ctx: Context) -> list[tuple]:
    return [(c,) for c in ctx.input_colours if c != 0]


@primitive(_input_colour_options)
def crop_to_colour(grid: Grid, colour: int) -> Grid:
    """Cut the bounding box of every cell of `colour`, with whatever lies inside it (a frame's
    contents, the area four corner marks span).

    >>> crop_to_colour(np.array([[0, 2, 0, 0], [0, 1, 2, 0], [0, 0, 0, 0]], dtype=np.uint8), 2).tolist()
    [[2, 0], [1, 2]]
    """
    mask = grid == colour
    if not mask.any():
        raise DSLError(f"no cell of colour {colour}")
    top, left, bottom, right = bbox(mask)
    return grid[top:bottom, left:right].copy()


@primitive()
def trim_border(grid: Grid) -> Grid:
    """Drop the outermost ring of cells (a frame around the contents).

    >>> trim_border(np.array([[5, 5, 5], [5, 1, 5], [5, 5, 5]], dtype=np.uint8)).tolist()
    [[1]]
    """
    if min(grid.shape) < 3:
        raise DSLError("a grid under 3 cells on a side has no inside")
    return grid[1:-1, 1:-1].copy()


def _infer_window(grids: Sequence[Grid], targets: Sequence[Grid]) -> tuple | None:
    """The one window (top, left, rows, cols) every target is cut from; negative top/left count from
    the far edge, so a window anchored to the bottom or right still fits inputs of varying size."""
    shapes = {t.shape for t in targets}
    if len(shapes) != 1:
        return None
    rows, cols = shapes.pop()
    if rows * cols == 1:
        return None  # a single cell matches by coincidence far more often than by design
    if any(g.shape[0] < rows or g.shape[1] < cols for g in grids):
        return None
    if all(g.shape == t.shape for g, t in zip(grids, targets)):
        return None  # the whole grid: the identity, not a crop
    first = grids[0]
    windows = np.lib.stride_tricks.sliding_window_view(first, (rows, cols))
    for top, left in np.argwhere((windows == targets[0]).all(axis=(2, 3))).tolist():
        # Try the anchor from the near edge first, then from the far one.
        for t in (top, top - first.shape[0]):
            for c in (left, left - first.shape[1]):
                args = (t, c, rows, cols)
                if all(_window(g, *args) is not None and np.array_equal(_window(g, *args), o)
                       for g, o in zip(grids, targets)):
                    return args
    return None


def _window(grid: Grid, top: int, left: int, rows: int, cols: int) -> Grid | None:
    top = top if top >= 0 else grid.shape[0] + top
    left = left if left >= 0 else grid.shape[1] + left
    if top < 0 or left < 0 or top + rows > grid.shape[0] or left + cols > grid.shape[1]:
        return None
    return grid[top:top + rows, left:left + cols]


@primitive(infer=_infer_window)
def crop_region(grid: Grid, top: int, left: int, rows: int, cols: int) -> Grid:
    """Cut a fixed rows x cols window at (top, left); a negative top/left counts from the far edge.

    >>> crop_region(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8), 0, -2, 2, 2).tolist()
    [[2, 3], [5, 6]]
    """
    window = _window(grid, top, left, rows, cols)
    if window is None:
        raise DSLError("the window does not fit the grid")
    return window.copy()


@primitive([(k,) for k in (2, 3, 4, 5)])
def upscale(grid: Grid, factor: int) -> Grid:
    """Blow every cell up into a factor x factor block.

    >>> upscale(np.array([[1, 2]], dtype=np.uint8), 2).tolist()
    [[1, 1, 2, 2], [1, 1, 2, 2]]
    """
    _fits(grid.shape[0] * factor, grid.shape[1] * factor)
    return np.repeat(np.repeat(grid, factor, axis=0), factor, axis=1)


@primitive()
def upscale_by_colours(grid: Grid) -> Grid:
    """Blow every cell up into a k x k block, k the number of non-zero colours (ac0a08a4, b91ae062).

    >>> upscale_by_colours(np.array([[1, 0], [0, 2]], dtype=np.uint8)).tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2]]
    """
    factor = int(np.count_nonzero(np.bincount(grid.ravel(), minlength=10)[1:]))
    if factor < 2:
        raise DSLError("fewer than two non-zero colours: no scale beyond the grid itself")
    _fits(grid.shape[0] * factor, grid.shape[1] * factor)
    return np.repeat(np.repeat(grid, factor, axis=0), factor, axis=1)


def _period(grid: Grid) -> int:
    """The fewest rows whose copies, stacked, make the grid exactly (the row count if none)."""
    rows = grid.shape[0]
    for p in range(1, rows):
        if rows % p == 0 and np.array_equal(grid[p:], grid[:-p]):
            return p
    return rows


@primitive()
def crop_to_period(grid: Grid) -> Grid:
    """The grid's repeating unit: the smallest tile that, repeated whole, makes the grid (7b7f7511).

    >>> crop_to_period(np.array([[1, 2, 1, 2], [3, 3, 3, 3]], dtype=np.uint8)).tolist()
    [[1, 2], [3, 3]]
    """
    rows, cols = _period(grid), _period(grid.T)
    if (rows, cols) == grid.shape:
        raise DSLError("the grid does not repeat")
    return grid[:rows, :cols].copy()


@primitive([(k,) for k in (2, 3, 4, 5)])
def downscale(grid: Grid, factor: int) -> Grid:
    """Shrink every factor x factor block to its most frequent colour (a tie goes to the lowest).

    A majority rather than a uniform-block test, so scattered noise inside a block is voted out
    (5614dbcf); on uniform blocks the two agree.

    >>> downscale(np.array([[1, 1, 2, 2], [1, 3, 2, 2]], dtype=np.uint8), 2).tolist()
    [[1, 2]]
    """
    rows, cols = grid.shape
    if rows % factor or cols % factor or (rows == factor and cols == factor):
        raise DSLError(f"{rows}x{cols} does not split into several {factor}x{factor} blocks")
    # One bincount over (block index, colour) pairs counts every block's colours at once.
    block = (np.arange(rows)[:, None] // factor) * (cols // factor) + np.arange(cols)[None, :] // factor
    counts = np.bincount((block * 10 + grid).ravel(), minlength=block.size // factor ** 2 * 10)
    return counts.reshape(rows // factor, cols // factor, 10).argmax(axis=2).astype(np.uint8)


# 1x3 and 3x1 solved none of the training tasks checked, so they are left out.
_TILES = [(1, 2), (2, 1), (2, 2), (3, 3)]


@primitive(_TILES)
def tile(grid: Grid, down: int, across: int) -> Grid:
    """Repeat the grid `down` times vertically and `across` times horizontally.

    >>> tile(np.array([[1, 2]], dtype=np.uint8), 2, 1).tolist()
    [[1, 2], [1, 2]]
    """
    _fits(grid.shape[0] * down, grid.shape[1] * across)
    return np.tile(grid, (down, across))


def _quadrants(grid: Grid, kind: str) -> tuple[Grid, Grid, Grid, Grid]:
    """(top-left, top-right, bottom-left, bottom-right) copies for a 2x2 mirror tile."""
    if kind == "mirror":  # the grid at top-left, reflected across both seams
        return grid, grid[:, ::-1], grid[::-1, :], grid[::-1, ::-1]
    if kind == "mirror_inward":  # the grid at bottom-right, reflections meeting at the centre
        return grid[::-1, ::-1], grid[::-1, :], grid[:, ::-1], grid
    if kind == "rotate":  # four quarter turns around the centre, clockwise from top-left
        if grid.shape[0] != grid.shape[1]:
            raise DSLError("rotated tiles need a square grid")
        return grid, np.rot90(grid, -1), np.rot90(grid, 1), grid[::-1, ::-1]
    raise DSLError(f"unknown mirror tile {kind!r}")


@primitive([("mirror",), ("mirror_inward",), ("rotate",)])
def mirror_tile(grid: Grid, kind: str) -> Grid:
    """A 2x2 kaleidoscope of the grid: "mirror" (reflections around the grid at top-left),
    "mirror_inward" (the grid at bottom-right), "rotate" (quarter turns around the centre).

    >>> mirror_tile(np.array([[1, 2], [0, 3]], dtype=np.uint8), "mirror").tolist()
    [[1, 2, 2, 1], [0, 3, 3, 0], [0, 3, 3, 0], [1, 2, 2, 1]]
    """
    _fits(grid.shape[0] * 2, grid.shape[1] * 2)
    rows, cols = grid.shape
    out = np.empty((rows * 2, cols * 2), dtype=np.uint8)
    out[:rows, :cols], out[:rows, cols:], out[rows:, :cols], out[rows:, cols:] = _quadrants(grid, kind)
    return out


@primitive([("right",), ("left",), ("below",), ("above",)])
def concat_mirror(grid: Grid, side: str) -> Grid:
    """Join the grid with its own mirror image placed on `side` ("right", "left", "below", "above").

    >>> concat_mirror(np.array([[1, 2], [3, 4]], dtype=np.uint8), "right").tolist()
    [[1, 2, 2, 1], [3, 4, 4, 3]]
    """
    if side in ("right", "left"):
        _fits(grid.shape[0], grid.shape[1] * 2)
        pair = (grid, grid[:, ::-1]) if side == "right" else (grid[:, ::-1], grid)
        return np.hstack(pair)
    _fits(grid.shape[0] * 2, grid.shape[1])
    pair = (grid, grid[::-1, :]) if side == "below" else (grid[::-1, :], grid)
    return np.vstack(pair)


# Halves of an odd side leave out the middle row or column: it is usually a separator.

def _half_side(size: int) -> tuple[int, int]:
    if size < 2:
        raise DSLError("a side of one cell has no halves")
    return size // 2, (size + 1) // 2


@primitive([("rows",), ("columns",)])
def first_third(grid: Grid, axis: str) -> Grid:
    """The first third of the rows or columns (a side that does not divide by 3 does not apply).

    >>> first_third(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8), "columns").tolist()
    [[1], [4]]
    """
    side = grid.shape[0 if axis == "rows" else 1]
    if side % 3:
        raise DSLError(f"{side} {axis} do not split into thirds")
    return (grid[:side // 3] if axis == "rows" else grid[:, :side // 3]).copy()


@primitive()
def top_half(grid: Grid) -> Grid:
    """The top half of the rows (an odd middle row dropped).

    >>> top_half(np.array([[1, 2], [3, 4], [5, 6]], dtype=np.uint8)).tolist()
    [[1, 2]]
    """
    end, _ = _half_side(grid.shape[0])
    return grid[:end].copy()


@primitive()
def bottom_half(grid: Grid) -> Grid:
    """The bottom half of the rows (an odd middle row dropped).

    >>> bottom_half(np.array([[1, 2], [3, 4], [5, 6]], dtype=np.uint8)).tolist()
    [[5, 6]]
    """
    _, start = _half_side(grid.shape[0])
    return grid[start:].copy()


@primitive()
def left_half(grid: Grid) -> Grid:
    """The left half of the columns (an odd middle column dropped).

    >>> left_half(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)).tolist()
    [[1], [4]]
    """
    end, _ = _half_side(grid.shape[1])
    return grid[:, :end].copy()


@primitive()
def right_half(grid: Grid) -> Grid:
    """The right half of the columns (an odd middle column dropped).

    >>> right_half(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)).tolist()
    [[3], [6]]
    """
    _, start = _half_side(grid.shape[1])
    return grid[:, start:].copy()


def _self_tile_options(ctx: Context) -> list[tuple]:
    return [("nonzero",), ("majority",)] + [(c,) for c in ctx.input_colours if c != 0]


@primitive(_self_tile_options)
def self_tile(grid: Grid, kind: str | int) -> Grid:
    """Tile the grid into itself: a copy of the grid for each marked cell, 0 elsewhere. Marked are
    the non-zero cells (007bbfb7), the cells of the most frequent colour ("majority", c3e719e8), or
    the cells of one colour (`kind` a colour: cce03e0d).

    >>> self_tile(np.array([[0, 2], [0, 0]], dtype=np.uint8), "nonzero").tolist()
    [[0, 0, 0, 2], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    >>> self_tile(np.array([[1, 2], [0, 0]], dtype=np.uint8), 2).tolist()
    [[0, 0, 1, 2], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    """
    _fits(grid.shape[0] ** 2, grid.shape[1] ** 2)
    if kind == "nonzero":
        marked = grid != 0
    elif kind == "majority":
        marked = grid == np.argmax(np.bincount(grid.ravel()))
    elif isinstance(kind, int) and 0 <= kind <= 9:
        marked = grid == kind
    else:
        raise DSLError(f"self_tile marks nonzero cells, majority cells or one colour 0..9, got {kind!r}")
    return np.kron(marked.astype(np.uint8), grid)


def _infer_shape(grids: Sequence[Grid], targets: Sequence[Grid]) -> tuple | None:
    """The one output shape shared by every target, when tiling each grid out to it fits them all."""
    shapes = {t.shape for t in targets}
    if len(shapes) != 1:
        return None
    rows, cols = shapes.pop()
    # Only growth is a repeat: shrinking to a fixed shape is `crop_region`'s business.
    if any(g.shape[0] > rows or g.shape[1] > cols or g.shape == (rows, cols) for g in grids):
        return None
    for g, t in zip(grids, targets):
        if not np.array_equal(_repeat(g, rows, cols), t):
            return None
    return rows, cols


def _repeat(grid: Grid, rows: int, cols: int) -> Grid:
    reps = (-(-rows // grid.shape[0]), -(-cols // grid.shape[1]))
    return np.tile(grid, reps)[:rows, :cols]


@primitive(infer=_infer_shape)
def repeat_to_shape(grid: Grid, rows: int, cols: int) -> Grid:
    """Tile the grid from its top-left corner out to rows x cols, cutting the last copies short.

    >>> repeat_to_shape(np.array([[1, 2]], dtype=np.uint8), 2, 3).tolist()
    [[1, 2, 1], [1, 2, 1]]
    """
    _fits(rows, cols)
    return _repeat(grid, rows, cols)
