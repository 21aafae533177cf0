"""Pattern primitives: symmetry completion, periodic inpainting and continuation, enclosed fills, lines.

- Symmetry: `complete_symmetry` fills a hole colour from the mirror images of its cells under the
  reflections (rows, columns, both diagonals, at any offset) and rotations the rest of the grid obeys;
  `symmetrize` mirrors the content over the background about its bounding box's centre;
  `is_symmetric` answers whether the grid is its own left-right mirror, as a 1x1 grid.
- Periodic tilings: `inpaint_pattern` fills a hole colour from the smallest 2-D tiling the other cells
  agree with; `continue_pattern` extends the tiling of the content's bounding box over the grid;
  `crop_hole` returns only what lies under the hole once filled (by symmetry, else by tiling).
- `fill_enclosed`: background regions that do not reach the border (4-neighbour) take a colour.
- Lines: `draw_lines_from_points` shoots lines from every single-cell object; `connect_same_colour`
  joins same-coloured cells sharing a row or column; `connect_pairs` (inferred) joins neighbouring
  same-coloured cells along rows, columns or diagonals; `extend_to_anchor` (inferred) extends
  cells in line with an anchor colour up to it; `connect_elbow` (inferred) joins two single cells
  by a path along the first one's row, then the second one's column.

The hole colour is never an argument: it is the colour whose cells, once treated as unknown, leave a
grid that obeys a symmetry (or a tiling) covering every one of them. That keeps the branching low.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from hybrid_pipeline.dsl.grids import background, bbox, label
from hybrid_pipeline.dsl.registry import Args, Context, DSLError, Grid, primitive

# A reflection must pair at least this share of the grid's cells with cells inside the grid, and
# confirm at least this share of the known cells: an axis near the border proves nothing.
_MIN_INSIDE = 0.5
_MIN_SUPPORT = 0.3
_MAX_LATTICES = 40


def _onehot(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """[n, m * 10] float32: a 1 at (i, j * 10 + colour) for each known cell (i, j)."""
    hot = np.zeros(values.shape + (10,), dtype=np.float32)
    i, j = np.nonzero(known)
    hot[i, j, values[i, j]] = 1.0
    return hot.reshape(values.shape[0], -1)


@lru_cache(maxsize=64)
def _axis_index(n: int) -> np.ndarray:
    """i + j for every (i, j) of an n x n matrix, flattened: the reflection axis of a pair."""
    idx = np.add.outer(np.arange(n), np.arange(n)).ravel()
    idx.setflags(write=False)
    return idx


@lru_cache(maxsize=64)
def _diagonal_coords(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """u = r + c and v = c - r + rows - 1 for every cell: a diagonal reflection is a 1-D
    reflection of v within each u (transpose) or of u within each v (antitranspose)."""
    r, c = np.indices((rows, cols))
    return r + c, c - r + rows - 1


def _reflection_axes(values: np.ndarray, known: np.ndarray, valid: np.ndarray) -> list[int]:
    """Axes a (pairing x with a - x along axis 1 of `values`) with no known-known disagreement.

    Counts come from matrix products of one-hot encodings, so every axis is scored at once.
    """
    a = _onehot(values.T, known.T)
    same = a @ a.T
    k = known.T.astype(np.float32)
    pairs = k @ k.T
    v = valid.T.astype(np.float32)
    inside = v @ v.T
    n = same.shape[0]
    np.fill_diagonal(same, 0)
    np.fill_diagonal(pairs, 0)
    np.fill_diagonal(inside, 0)
    idx = _axis_index(n)
    bins = 2 * n - 1
    agree = np.bincount(idx, same.ravel(), bins)
    clash = np.bincount(idx, (pairs - same).ravel(), bins)
    cover = np.bincount(idx, inside.ravel(), bins)
    ok = (clash == 0) & (cover >= _MIN_INSIDE * valid.sum()) & (agree >= _MIN_SUPPORT * known.sum())
    ok &= agree > 0
    return np.flatnonzero(ok).tolist()


def _symmetries(grid: Grid, known: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Image (rows, cols) index arrays of every reflection or rotation the known cells obey."""
    rows, cols = grid.shape
    r, c = np.indices(grid.shape)
    maps = []
    valid = np.ones(grid.shape, dtype=bool)
    for a in _reflection_axes(grid, known, valid):
        maps.append((r, a - c))
    for a in _reflection_axes(grid.T, known.T, valid.T):
        maps.append((a - r, c))
    if rows != cols:
        return maps + _turns(grid, known)
    u, v = _diagonal_coords(rows, cols)
    side = rows + cols - 1
    dense = np.zeros((side, side), dtype=np.uint8)
    dense_known = np.zeros((side, side), dtype=bool)
    dense_valid = np.zeros((side, side), dtype=bool)
    dense[u, v] = grid
    dense_known[u, v] = known
    dense_valid[u, v] = True
    for a in _reflection_axes(dense, dense_known, dense_valid):
        d = a // 2 - (rows - 1)
        maps.append((c - d, r + d))
    for a in _reflection_axes(dense.T, dense_known.T, dense_valid.T):
        maps.append((a // 2 - c, a // 2 - r))
    return maps + _turns(grid, known)


def _turns(grid: Grid, known: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rotations about the grid's centre the known cells obey; off-centre ones follow from two
    reflections."""
    rows, cols = grid.shape
    r, c = np.indices(grid.shape)
    maps = []
    turns = [(rows - 1 - r, cols - 1 - c)]
    if rows == cols:
        turns.append((c, rows - 1 - r))
    for image in turns:
        both = known & known[image]
        if both.sum() >= _MIN_SUPPORT * known.sum() and np.array_equal(grid[both], grid[image][both]):
            maps.append(image)
    return maps


def _fill_by_symmetry(grid: Grid, hole: np.ndarray) -> Grid | None:
    """`grid` with every hole cell copied from a known mirror image, or None if some stay unknown."""
    maps = _symmetries(grid, ~hole)
    if not maps:
        return None
    out = grid.copy()
    known = ~hole
    rows, cols = grid.shape
    # Fills chain (a cell's mirror may itself be a filled hole), so repeat until nothing changes.
    for _ in range(4):
        for ri, ci in maps:
            inside = (ri >= 0) & (ri < rows) & (ci >= 0) & (ci < cols)
            src = np.zeros(grid.shape, dtype=bool)
            src[inside] = known[ri[inside], ci[inside]]
            take = ~known & src
            if take.any():
                out[take] = out[ri[take], ci[take]]
                known = known | take
        if known.all():
            return out
    return None


def _row_periods(grid: Grid, known: np.ndarray) -> list[int]:
    """Shifts p (1..rows) such that row i and row i + p agree on their known cells for every i."""
    a = _onehot(grid, known)
    k = known.astype(np.float32)
    clash = k @ k.T - a @ a.T
    rows = grid.shape[0]
    return [p for p in range(1, rows) if not np.diagonal(clash, p).any()] + [rows]


def _lattices(grid: Grid, known: np.ndarray, extent: tuple[int, int]):
    """Candidate tilings (py, px, shear), smallest tile first.

    A period must repeat at least twice within `extent` (the known region's size) or equal it, so a
    single tile is never cut into a smaller one it only happens to agree with. Shear 0 is a
    rectangular tiling; shears +-1 (row r + 1 is row r shifted one column) give diagonal stripes.
    """
    rows, cols = grid.shape
    pys = [p for p in _row_periods(grid, known) if 2 * p <= extent[0] or p == extent[0]]
    pxs = [p for p in _row_periods(grid.T, known.T) if 2 * p <= extent[1] or p == extent[1]]
    found = [(py * px, py, px, 0) for py in pys for px in pxs if (py, px) != (rows, cols)]
    for shear, a, b in ((1, grid[:-1, :-1], grid[1:, 1:]), (-1, grid[:-1, 1:], grid[1:, :-1])):
        ka = known[:-1, :-1] if shear == 1 else known[:-1, 1:]
        kb = known[1:, 1:] if shear == 1 else known[1:, :-1]
        both = ka & kb
        if both.any() and np.array_equal(a[both], b[both]):
            found += [(px, 1, px, shear % px) for px in range(2, cols // 2 + 1)]
    return [f[1:] for f in sorted(found)]


def _fill_by_period(grid: Grid, hole: np.ndarray, extent: tuple[int, int] | None = None) -> Grid | None:
    """`grid` with the hole cells taken from the smallest tiling the other cells agree with."""
    known = ~hole
    r, c = np.indices(grid.shape)
    values = grid[known].astype(np.int64)
    # Many candidates means many blank rows and columns, not a tiling worth a long search.
    for py, px, shear in _lattices(grid, known, extent or grid.shape)[:_MAX_LATTICES]:
        cls = (r % py) * px + (c - (r // py) * shear) % px
        counts = np.bincount(cls[known] * 10 + values, minlength=py * px * 10).reshape(-1, 10)
        present = counts > 0
        if (present.sum(axis=1) > 1).any() or not present[cls[hole]].any(axis=1).all():
            continue
        out = grid.copy()
        out[hole] = counts.argmax(axis=1)[cls[hole]]
        return out
    return None


def _hole_colours(grid: Grid) -> list[int]:
    """Candidate hole colours, rarest first: a hole is usually a small patch."""
    counts = np.bincount(grid.ravel(), minlength=10)
    present = np.flatnonzero(counts)
    if present.size < 2:
        return []
    return sorted(present.tolist(), key=lambda k: (counts[k], k))


def _inpaint(grid: Grid, fill) -> tuple[Grid, np.ndarray]:
    """The first hole colour `fill` can complete: (filled grid, hole mask)."""
    for h in _hole_colours(grid):
        hole = grid == h
        out = fill(grid, hole)
        if out is not None:
            return out, hole
    raise DSLError("no colour is a hole in a symmetric or periodic grid")


@primitive(max_step=1)
def complete_symmetry(grid: Grid) -> Grid:
    """Fill the hole colour's cells from their mirror images under the grid's symmetries.

    The hole colour is found, not given; axes may sit off the grid's centre.

    >>> complete_symmetry(np.array([[1, 2, 2, 1], [3, 4, 4, 3], [3, 4, 9, 9], [1, 2, 2, 1]],
    ...                            dtype=np.uint8)).tolist()
    [[1, 2, 2, 1], [3, 4, 4, 3], [3, 4, 4, 3], [1, 2, 2, 1]]
    """
    return _inpaint(grid, _fill_by_symmetry)[0]


@primitive(max_step=1)
def inpaint_pattern(grid: Grid) -> Grid:
    """Fill the hole colour's cells from the smallest 2-D tiling the other cells agree with.

    >>> inpaint_pattern(np.array([[1, 2, 1, 2], [3, 4, 3, 4], [1, 0, 0, 2]], dtype=np.uint8)).tolist()
    [[1, 2, 1, 2], [3, 4, 3, 4], [1, 2, 1, 2]]
    """
    return _inpaint(grid, _fill_by_period)[0]


def _fill_any(grid: Grid, hole: np.ndarray) -> Grid | None:
    out = _fill_by_symmetry(grid, hole)
    return out if out is not None else _fill_by_period(grid, hole)


@primitive(max_step=1)
def crop_hole(grid: Grid) -> Grid:
    """What lies under the hole colour's bounding box once filled by symmetry, else by tiling.

    >>> crop_hole(np.array([[1, 2, 2, 1], [3, 4, 4, 3], [3, 4, 9, 9], [1, 2, 2, 1]],
    ...                    dtype=np.uint8)).tolist()
    [[4, 3]]
    """
    out, hole = _inpaint(grid, _fill_any)
    top, left, bottom, right = bbox(hole)
    return out[top:bottom, left:right]


@primitive(max_step=2)
def continue_pattern(grid: Grid) -> Grid:
    """Extend the tiling of the content's bounding box over the whole grid.

    >>> continue_pattern(np.array([[0, 0, 0], [1, 2, 1], [0, 0, 0]], dtype=np.uint8)).tolist()
    [[1, 2, 1], [1, 2, 1], [1, 2, 1]]
    """
    bg = background(grid)
    content = grid != bg
    if not content.any():
        raise DSLError("no content to continue")
    top, left, bottom, right = bbox(content)
    unknown = np.ones(grid.shape, dtype=bool)
    unknown[top:bottom, left:right] = False
    if not unknown.any():
        raise DSLError("the content already fills the grid")
    out = _fill_by_period(grid, unknown, (bottom - top, right - left))
    if out is None:
        raise DSLError("the content is not one tile of a tiling that fits the grid")
    return out


@primitive(max_step=2)
def symmetrize(grid: Grid) -> Grid:
    """Mirror the content over the background under every symmetry about its bounding box's centre
    that its cells do not contradict.

    >>> symmetrize(np.array([[0, 0, 0], [1, 1, 0], [1, 2, 1]], dtype=np.uint8)).tolist()
    [[0, 0, 0], [1, 1, 1], [1, 2, 1]]
    """
    bg = background(grid)
    content = grid != bg
    if not content.any():
        raise DSLError("no content to mirror")
    top, left, bottom, right = bbox(content)
    box = grid[top:bottom, left:right]
    known = box != bg
    h, w = box.shape
    r, c = np.indices(box.shape)
    images = [(h - 1 - r, c), (r, w - 1 - c), (h - 1 - r, w - 1 - c)]
    if h == w:
        images += [(c, r), (w - 1 - c, h - 1 - r), (c, h - 1 - r), (w - 1 - c, r)]
    out = box.copy()
    for image in images:
        both = known & known[image]
        if np.array_equal(box[both], box[image][both]):
            take = (out == bg) & known[image]
            out[take] = box[image][take]
    if np.array_equal(out, box):
        raise DSLError("mirroring adds nothing")
    result = grid.copy()
    result[top:bottom, left:right] = out
    return result


@primitive()
def is_symmetric(grid: Grid) -> Grid:
    """A 1x1 grid: 1 when the grid equals its left-right mirror, else 0 (recolor renames them).

    >>> is_symmetric(np.array([[2, 0, 2], [0, 2, 0]], dtype=np.uint8)).tolist()
    [[1]]
    """
    return np.array([[int(np.array_equal(grid, grid[:, ::-1]))]], dtype=np.uint8)


def _fill_colour_options(ctx: Context) -> list[tuple]:
    """Colours an output gains: new colours first, else every output colour."""
    return [(c,) for c in (ctx.new_colours or ctx.output_colours)]


@primitive(_fill_colour_options, max_step=2)
def fill_enclosed(grid: Grid, colour: int) -> Grid:
    """Background regions that do not touch the border (4-neighbour) take `colour`.

    >>> fill_enclosed(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.uint8), 4).tolist()
    [[0, 1, 0], [1, 4, 1], [0, 1, 0]]
    """
    bg = background(grid)
    # Label the background cells alone: every other colour is a wall.
    walls = np.where(grid == bg, 1, 0).astype(np.uint8)
    labels, n = label(walls, diagonal=False, multicolour=False, bg=0)
    if n == 0:
        raise DSLError("no background region")
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    enclosed = (labels > 0) & ~np.isin(labels, edge)
    if not enclosed.any():
        raise DSLError("no enclosed background")
    out = grid.copy()
    out[enclosed] = colour
    return out


_DIRECTIONS = {
    "horizontal": ((0, 1), (0, -1)),
    "vertical": ((1, 0), (-1, 0)),
    "cross": ((0, 1), (0, -1), (1, 0), (-1, 0)),
    "diagonal": ((1, 1), (1, -1), (-1, 1), (-1, -1)),
    "star": ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1)),
}


def _ray(shape: tuple[int, int], r: int, c: int, dr: int, dc: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells from (r, c), excluded, to the border in direction (dr, dc)."""
    rows, cols = shape
    steps = min((rows - 1 - r) if dr > 0 else r if dr < 0 else 99,
                (cols - 1 - c) if dc > 0 else c if dc < 0 else 99)
    k = np.arange(1, steps + 1)
    return r + dr * k, c + dc * k


@primitive([(d,) for d in _DIRECTIONS], max_step=2)
def draw_lines_from_points(grid: Grid, direction: str) -> Grid:
    """From every single-cell object, a line of its colour to the borders over the background.

    direction: "horizontal", "vertical", "cross" (both), "diagonal" or "star" (all eight).

    >>> draw_lines_from_points(np.array([[0, 0, 0], [0, 3, 0], [0, 0, 0]], dtype=np.uint8), "vertical").tolist()
    [[0, 3, 0], [0, 3, 0], [0, 3, 0]]
    """
    bg = background(grid)
    content = grid != bg
    padded = np.pad(content, 1)
    neighbours = sum(padded[1 + dr:1 + dr + grid.shape[0], 1 + dc:1 + dc + grid.shape[1]]
                     for dr, dc in _DIRECTIONS["star"])
    points = np.argwhere(content & (neighbours == 0))
    if len(points) == 0:
        raise DSLError("no single-cell object")
    lines = np.zeros(grid.shape, dtype=np.uint8)
    drawn = np.zeros(grid.shape, dtype=bool)
    for r, c in points.tolist():
        for dr, dc in _DIRECTIONS[direction]:
            ri, ci = _ray(grid.shape, r, c, dr, dc)
            lines[ri, ci] = grid[r, c]
            drawn[ri, ci] = True
    out = grid.copy()
    take = drawn & (grid == bg)
    out[take] = lines[take]
    if np.array_equal(out, grid):
        raise DSLError("the lines cover nothing")
    return out


def _line_colour_options(ctx: Context) -> list[tuple]:
    """The cells' own colour (None), or one of the colours outputs gain."""
    return [(None,)] + [(c,) for c in ctx.new_colours]


@primitive(_line_colour_options, max_step=2)
def connect_same_colour(grid: Grid, colour: int | None) -> Grid:
    """Straight lines over the background between same-coloured cells in one row or column.

    colour: the line's colour; None draws each line in its end cells' colour.

    >>> connect_same_colour(np.array([[2, 0, 2], [0, 0, 0], [0, 0, 0]], dtype=np.uint8), None).tolist()
    [[2, 2, 2], [0, 0, 0], [0, 0, 0]]
    """
    bg = background(grid)
    if (grid == bg).all():
        raise DSLError("no cells to connect")
    out = grid.copy()
    free = grid == bg
    for g, o in ((grid, out), (grid.T, out.T)):
        for k in np.unique(g[g != bg]).tolist():
            cells = g == k
            # Between the first and last cell of colour k in a line, fill the background.
            first = np.where(cells.any(axis=1), cells.argmax(axis=1), g.shape[1])
            last = g.shape[1] - 1 - cells[:, ::-1].argmax(axis=1)
            idx = np.arange(g.shape[1])
            span = (idx >= first[:, None]) & (idx <= last[:, None])
            take = span & (free if g is grid else free.T)
            o[take] = k if colour is None else colour
    return out


def _extend_pairs(grid: Grid, out: Grid, colour: int, bg: int) -> None:
    """Along each row of `grid`: between neighbouring non-background cells of which exactly one
    has `colour`, fill the background in `out` with the other cell's colour."""
    ys, xs = np.nonzero(grid != bg)  # row by row, left to right
    same_row = ys[1:] == ys[:-1]
    gap = xs[1:] - xs[:-1] > 1
    a, b = grid[ys[:-1], xs[:-1]], grid[ys[1:], xs[1:]]
    towards = same_row & gap & ((a == colour) != (b == colour))
    for i in np.flatnonzero(towards).tolist():
        out[ys[i], xs[i] + 1:xs[i + 1]] = b[i] if a[i] == colour else a[i]


def _extend(grid: Grid, colour: int) -> Grid:
    bg = background(grid)
    out = grid.copy()
    _extend_pairs(grid, out, colour, bg)
    _extend_pairs(grid.T, out.T, colour, bg)
    return out


def _infer_anchor(grids: Sequence[Grid], targets: Sequence[Grid]) -> Args | None:
    if any(g.shape != t.shape for g, t in zip(grids, targets)):
        return None
    # Only background cells change, and into a colour: checked before any line is drawn.
    anchors = None
    for g, t in zip(grids, targets):
        bg = background(g)
        changed = g != t
        if (changed & (g != bg)).any() or (t[changed] == bg).any():
            return None
        present = set(np.unique(g).tolist()) - {bg}
        anchors = present if anchors is None else anchors & present
    if not any((g != t).any() for g, t in zip(grids, targets)):
        return None
    for anchor in [*sorted(anchors), "largest"]:
        try:
            if all(np.array_equal(_extend(g, _anchor_colour(g, anchor)), t) for g, t in zip(grids, targets)):
                return (anchor,)
        except DSLError:
            continue
    return None


def _anchor_colour(grid: Grid, anchor: int | str) -> int:
    """`anchor` itself, or for "largest" the colour of the grid's one largest colour region."""
    bg = background(grid)
    if anchor != "largest":
        colour = int(anchor)
    else:
        labels, n = label(grid, diagonal=False, multicolour=False, bg=bg)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        if n == 0 or (sizes == sizes.max()).sum() != 1:
            raise DSLError("no single largest region to be the anchor")
        colour = int(grid[labels == int(sizes.argmax()) + 1][0])
    if colour == bg or not (grid == colour).any():
        raise DSLError(f"no anchor of colour {colour}")
    return colour


@primitive(infer=_infer_anchor)
def extend_to_anchor(grid: Grid, anchor: int | str) -> Grid:
    """Every cell in line (row or column) with an anchor cell, nothing but background between,
    draws a line of its own colour up to it. anchor: a colour, or "largest" for the colour of the
    largest one-colour region (4-neighbour).

    >>> extend_to_anchor(np.array([[3, 0, 0, 1], [0, 0, 0, 0], [3, 0, 0, 0]], dtype=np.uint8), 3).tolist()
    [[3, 1, 1, 1], [0, 0, 0, 0], [3, 0, 0, 0]]
    """
    out = _extend(grid, _anchor_colour(grid, anchor))
    if np.array_equal(out, grid):
        raise DSLError("nothing is in line with the anchor")
    return out


# Line directions of `connect_pairs`: each a (row step, column step) along the line.
_PAIR_STEPS = {"horizontal": ((0, 1),), "vertical": ((1, 0),), "both": ((0, 1), (1, 0)),
               "diagonal": ((1, 1), (1, -1))}


def _connect(grid: Grid, orientation: str, colour: int | None) -> Grid:
    bg = background(grid)
    ys, xs = np.nonzero(grid != bg)
    values = grid[ys, xs]
    out = grid.copy()
    for dy, dx in _PAIR_STEPS[orientation]:
        # A line is the cells with equal (dx * r - dy * c); along it cells go by (dy * r + dx * c),
        # which grows by `norm` per step.
        norm = dy * dy + dx * dx
        line = dx * ys - dy * xs
        pos = dy * ys + dx * xs
        order = np.lexsort((pos, line))
        l, q, v = line[order], pos[order], values[order]
        join = (l[1:] == l[:-1]) & (q[1:] - q[:-1] > norm) & (v[1:] == v[:-1])
        for i in np.flatnonzero(join).tolist():
            k = np.arange(1, (q[i + 1] - q[i]) // norm)
            r, c = ys[order[i]] + dy * k, xs[order[i]] + dx * k
            out[r, c] = v[i] if colour is None else colour
    return out


def _infer_pairs(grids: Sequence[Grid], targets: Sequence[Grid]) -> Args | None:
    if any(g.shape != t.shape for g, t in zip(grids, targets)):
        return None
    # Only background cells change, into a colour: checked before any line is drawn. A fixed line
    # colour must be the one colour every changed cell takes.
    new: set[int] = set()
    for g, t in zip(grids, targets):
        bg = background(g)
        changed = g != t
        if (changed & (g != bg)).any():
            return None
        new.update(np.unique(t[changed]).tolist())
    if not new or background(grids[0]) in new:
        return None
    colours = [None] + ([new.pop()] if len(new) == 1 else [])
    for orientation in _PAIR_STEPS:
        for colour in colours:
            if all(np.array_equal(_connect(g, orientation, colour), t) for g, t in zip(grids, targets)):
                return (orientation, colour)
    return None


@primitive(infer=_infer_pairs)
def connect_pairs(grid: Grid, orientation: str, colour: int | None) -> Grid:
    """Fill the background between neighbouring cells of one colour along a line with `colour`
    (None: theirs). orientation: "horizontal", "vertical", "both" or "diagonal" (both diagonals).

    >>> grid = np.array([[1, 0, 1, 0, 1], [0, 0, 0, 0, 0], [1, 0, 0, 2, 0]], dtype=np.uint8)
    >>> connect_pairs(grid, "horizontal", 2).tolist()
    [[1, 2, 1, 2, 1], [0, 0, 0, 0, 0], [1, 0, 0, 2, 0]]
    """
    if orientation not in _PAIR_STEPS:
        raise DSLError(f"unknown orientation {orientation!r}")
    out = _connect(grid, orientation, colour)
    if np.array_equal(out, grid):
        raise DSLError("no two neighbouring cells of one colour to connect")
    return out


def _elbow(grid: Grid, along_row: int, along_col: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The cells of the elbow path, or None unless each of the two colours has exactly one cell."""
    a, b = np.argwhere(grid == along_row), np.argwhere(grid == along_col)
    if len(a) != 1 or len(b) != 1:
        return None
    (r1, c1), (r2, c2) = a[0], b[0]
    step = 1 if c2 >= c1 else -1
    cols = np.arange(c1 + step, c2 + step, step)
    rstep = 1 if r2 >= r1 else -1
    rows = np.arange(r1 + rstep, r2, rstep)
    return (np.concatenate([np.full(cols.size, r1), rows]).astype(int),
            np.concatenate([cols, np.full(rows.size, c2)]).astype(int))


def _infer_elbow(grids: Sequence[Grid], targets: Sequence[Grid]) -> Args | None:
    if any(g.shape != t.shape for g, t in zip(grids, targets)):
        return None
    new = set()
    for g, t in zip(grids, targets):
        new |= set(np.unique(t[g != t]).tolist())
    if len(new) != 1:
        return None
    colour = new.pop()
    singles = set.intersection(*({int(c) for c, n in zip(*np.unique(g, return_counts=True)) if n == 1}
                                 for g in grids))
    for along_row in sorted(singles):
        for along_col in sorted(singles - {along_row}):
            try:
                if all(np.array_equal(connect_elbow(g, along_row, along_col, colour), t) for g, t in zip(grids, targets)):
                    return along_row, along_col, colour
            except DSLError:
                continue
    return None


@primitive(infer=_infer_elbow, keeps_shape=True, max_step=1)
def connect_elbow(grid: Grid, along_row: int, along_col: int, colour: int) -> Grid:
    """A path in `colour` from the one cell of colour `along_row` along its row to the column of the
    one cell of colour `along_col`, then along that column to it (a2fd1cf0, d4a91cb9); only
    background cells are painted.

    >>> connect_elbow(np.array([[2, 0, 0], [0, 0, 0], [0, 0, 3]], dtype=np.uint8), 2, 3, 8).tolist()
    [[2, 8, 8], [0, 0, 8], [0, 0, 3]]
    """
    path = _elbow(grid, along_row, along_col)
    if path is None:
        raise DSLError(f"an elbow joins one cell of colour {along_row} and one of colour {along_col}")
    out = grid.copy()
    rows, cols = path
    free = grid[rows, cols] == background(grid)
    out[rows[free], cols[free]] = colour
    return out
