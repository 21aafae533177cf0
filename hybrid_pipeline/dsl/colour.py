"""Colour primitives: which colour each cell is, never where it goes.

Covers the inferred colour map `recolor` (the search's main finisher), replacing, keeping and
removing one colour, swapping the two colours of a two-colour grid, repainting the background,
two-colour masks (`binarize`, `invert_mask`) that a final `recolor` paints, the most and least
frequent colour as a 1x1 grid, a bar of the colours ordered by how many cells they cover, the
non-zero cells lined up as one row, the inferred `recolor_by_rank` (colours named by how many
cells they cover, so the map may differ between grids), and the inferred `local_rule` (each
cell's new colour read off a table keyed by its colour and which of its neighbours are filled).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from hybrid_pipeline.dsl.grids import KEEP, NEIGHBOURS, background, paint_by_key
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


@primitive(infer=_infer_mapping, keeps_shape=True)
def recolor(grid: Grid, mapping: dict) -> Grid:
    """Paint each colour by `mapping` (source -> target); colours not in it stay as they are.

    >>> recolor(np.array([[1, 2], [2, 0]], dtype=np.uint8), {2: 5}).tolist()
    [[1, 5], [5, 0]]
    """
    lut = np.arange(10, dtype=np.uint8)
    for source, target in mapping.items():
        lut[source] = target
    return lut[grid]


def _count_order(grid: Grid) -> np.ndarray:
    """The grid's colours, most cells first; DSLError when two colours tie (no rank to name)."""
    counts = np.bincount(grid.ravel(), minlength=10)
    present = np.flatnonzero(counts)
    order = present[np.argsort(-counts[present], kind="stable")]
    if np.unique(counts[present]).size != present.size:
        raise DSLError("two colours cover as many cells")
    return order


def _infer_rank_map(grids: Sequence[Grid], targets: Sequence[Grid]) -> tuple | None:
    """The map rank -> rank (0: the most frequent colour) that every demonstration agrees with,
    identity entries left out. Each entry that changes a colour must show in two demonstrations
    or more, so one grid's coincidence of counts does not make a rule."""
    if len(grids) < 2 or any(g.shape != t.shape for g, t in zip(grids, targets)):
        return None
    table: dict[int, int] = {}
    shown: dict[int, int] = {}
    for grid, target in zip(grids, targets):
        # a rank map is a colour map on each grid: check that cheaply before ranking
        pairs = np.bincount((grid.astype(np.int64) * 10 + target).ravel(), minlength=100)
        if ((pairs.reshape(10, 10) > 0).sum(axis=1) > 1).any():
            return None
    for grid, target in zip(grids, targets):
        try:
            order = _count_order(grid)
        except DSLError:
            return None
        rank = np.full(10, -1, dtype=np.int64)
        rank[order] = np.arange(order.size)
        # each (source rank, target colour) pair that occurs: a source must have one image
        pairs = np.unique(rank[grid].astype(np.int64) * 10 + target)
        sources, images = pairs // 10, rank[pairs % 10]
        if (sources[1:] == sources[:-1]).any() or (images < 0).any():
            return None  # a colour split in two, or painted a colour the grid lacks
        for source, image in zip(sources.tolist(), images.tolist()):
            if table.setdefault(source, image) != image:
                return None
            shown[source] = shown.get(source, 0) + 1
    table = {s: t for s, t in table.items() if s != t}
    if not table or any(shown[s] < 2 for s in table):
        return None
    return (table,)


@primitive(infer=_infer_rank_map, keeps_shape=True)
def recolor_by_rank(grid: Grid, ranks: dict) -> Grid:
    """Paint the colour of each count rank (0: most cells) as the colour of rank `ranks[rank]`;
    DSLError when two colours tie or a rank is missing.

    >>> recolor_by_rank(np.array([[0, 0, 0], [0, 2, 2], [0, 0, 5]], dtype=np.uint8), {1: 2, 2: 0}).tolist()
    [[0, 0, 0], [0, 5, 5], [0, 0, 0]]
    """
    order = _count_order(grid)
    if max(max(ranks), max(ranks.values())) >= order.size:
        raise DSLError(f"the grid has {order.size} colours, fewer than the ranks need")
    lut = np.arange(10, dtype=np.uint8)
    for source, target in ranks.items():
        lut[order[source]] = order[target]
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


def _neighbour_bits(grids: Sequence[Grid]) -> np.ndarray:
    """Per cell of every grid, in reading order one grid after another: bit i set where neighbour i
    of all 8 is not 0 (outside the grid counts as empty).

    The grids go onto one canvas, a row of 0 between them, so eight shifted slices serve them all:
    per-grid slicing cost more than the lookup it feeds."""
    width = max(g.shape[1] for g in grids) + 2
    canvas = np.zeros((sum(g.shape[0] + 1 for g in grids) + 1, width), dtype=np.uint8)
    inside = np.zeros(canvas.shape, dtype=bool)
    top = 1
    for g in grids:
        canvas[top:top + g.shape[0], 1:1 + g.shape[1]] = g != 0
        inside[top:top + g.shape[0], 1:1 + g.shape[1]] = True
        top += g.shape[0] + 1
    rows, cols = canvas.shape[0] - 2, width - 2
    bits = np.zeros((rows, cols), dtype=np.uint8)
    for i, (dy, dx) in enumerate(NEIGHBOURS[8]):
        bits |= canvas[1 + dy:1 + dy + rows, 1 + dx:1 + dx + cols] << np.uint8(i)
    return bits[inside[1:-1, 1:-1]].astype(np.int32)


# How a local rule keys a cell: "filled" (whether it is 0, with "keep its colour" as an output, so
# one rule serves every colour: 7f4411dc) before "colour" (its own colour, the finer key).
_KEYINGS = ("filled", "colour")


def _local_keys(grid: Grid, neighbours: int, by: str) -> np.ndarray:
    """Per cell: (its colour, or 1 where filled, 0 where not) + 10 * (bit i set where neighbour i
    is not 0). Outside the grid counts as empty, so an edge cell keys like one beside black (a
    table keyed on the border as well saw too few edge layouts to cover the test inputs). The 4
    neighbours are the low 4 bits."""
    bits = _neighbour_bits([grid]).reshape(grid.shape)
    own = grid.astype(np.int32) if by == "colour" else (grid != 0).astype(np.int32)
    return own + 10 * (bits & ((1 << neighbours) - 1))


def _keys_agree(keys: np.ndarray, outs: np.ndarray) -> bool:
    """Whether equal keys always have equal outputs."""
    order = np.argsort(keys, kind="stable")
    keys, outs = keys[order], outs[order]
    same = keys[1:] == keys[:-1]
    return not (same & (outs[1:] != outs[:-1])).any()


@lru_cache(maxsize=4096)
def _pair_agrees(grid: bytes, shape: tuple[int, int], target: bytes) -> bool:
    """Whether one pair's cells agree on the finest key (colour and 8 neighbours, which every
    other keying coarsens): necessary for any table. Most states fail on their first pair, and a
    third of them share that first grid with an earlier state, so the answer is kept."""
    cells = np.frombuffer(grid, dtype=np.uint8).reshape(shape)
    keys = cells.ravel().astype(np.int32) + 10 * _neighbour_bits([cells])
    return _keys_agree(keys, np.frombuffer(target, dtype=np.uint8))


def _infer_local_rule(grids: Sequence[Grid], targets: Sequence[Grid]) -> tuple | None:
    """The first keying (see `_KEYINGS`) and smallest neighbourhood (4, then 8) whose key -> colour
    table every demonstration cell agrees with. Refused when shapes differ, nothing changes, or
    there is a single demonstration or the table has more than a quarter as many entries as there
    are demonstration cells: a table that large just memorises the answers."""
    if len(grids) < 2 or any(g.shape != t.shape for g, t in zip(grids, targets)):
        return None
    if all(np.array_equal(g, t) for g, t in zip(grids, targets)):
        return None
    if not _pair_agrees(grids[0].tobytes(), grids[0].shape, targets[0].tobytes()):
        return None
    outs = np.concatenate([t.ravel() for t in targets])
    colours = np.concatenate([g.ravel() for g in grids]).astype(np.int32)
    bits = _neighbour_bits(grids)
    for by in _KEYINGS:
        own = colours if by == "colour" else (colours != 0).astype(np.int32)
        values = outs if by == "colour" else np.where(outs == colours, KEEP, outs)
        weights = values.astype(np.float64)
        for neighbours in NEIGHBOURS:
            keys = own + 10 * (bits & ((1 << neighbours) - 1))
            # a key is consistent when its outputs do not vary: n * sum(o^2) == sum(o)^2 (three
            # bincounts over the keys, far cheaper than one over (key, colour) pairs)
            size = 10 << neighbours
            count = np.bincount(keys, minlength=size)
            known = np.flatnonzero(count)
            if 4 * known.size > outs.size:
                break  # a larger neighbourhood only splits the keys further
            total = np.bincount(keys, weights, minlength=size)
            squares = np.bincount(keys, weights * weights, minlength=size)
            if (count[known] * squares[known] != total[known] ** 2).any():
                continue  # some key needs two colours: look further out
            colour = (total[known] / count[known]).astype(np.int64)
            return neighbours, by, dict(zip(known.tolist(), colour.tolist()))
    return None


@primitive(infer=_infer_local_rule, keeps_shape=True)
def local_rule(grid: Grid, neighbours: int, by: str, table: dict) -> Grid:
    """Each cell's colour from `table` (10: keep its colour), keyed by the cell (`by` "colour": its
    colour; "filled": 1 where not 0) + 10 * (bit i set where neighbour i is not 0; 4 or 8
    neighbours: up, down, left, right, then the diagonals); DSLError on a key not in it.

    >>> local_rule(np.array([[0, 1]], dtype=np.uint8), 4, "colour", {80: 2, 1: 1}).tolist()
    [[2, 1]]
    """
    return paint_by_key(grid, _local_keys(grid, neighbours, by), table,
                        unseen="a neighbourhood the demonstrations never showed")
