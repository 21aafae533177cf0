"""Structure primitives: grids made of cells, and grids made of repeated rows and columns.

Covers:
- splitting a grid into cells, at separator lines (full rows/columns of one colour) or, without
  lines, into equal squares or halves (`cells`, a helper);
- combining equal cells cell-wise into a 0/1 mask (`cells_and`, `cells_or`, `cells_xor`,
  `cells_nor`; the inferred `recolor` finisher paints the mask in the task's colour) or keeping
  their colours (`cells_overlay`, `cells_underlay`), and the cell-wise `majority_cell`;
- picking one cell (`cell_select_*`: most/fewest colours, most/least filled, the odd one out), one
  pixel per cell (`cell_colours`), joining the cells without their lines (`remove_separators`),
  and stamping one cell's shape at every cell of the other (`stamp_halves`);
- merging runs of identical adjacent rows/columns (`compress_rows`, `compress_columns`,
  `dedupe_rows_cols`), and stripes cleaned of noise (`majority_lines`);
- the inferred `output_by_class`: a whole output grid looked up by a class of the input (where
  its filled cells are, or which colours it has), read off demonstrations that repeat a class.

The combiners count a position as filled where it is not 0, ARC's usual background: the grid's most
frequent colour would flip between demonstrations of one task (cells half 0, half 9) and so flip
the logic. The selectors compare cells of one grid, so they count against its background colour.
"""

from __future__ import annotations

from functools import lru_cache
from collections import Counter
from typing import Callable, Sequence

import numpy as np

from hybrid_pipeline.dsl.grids import background, frozen, per_grid
from hybrid_pipeline.dsl.registry import MAX_SIDE, DSLError, Grid, primitive


def _runs(keep: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of every maximal run of True in a 1-D bool array."""
    padded = np.concatenate(([False], keep, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def _line_colours(grid: Grid) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """colour -> (full rows, full columns) masks, for each colour that fills a whole row or column.

    A line is at least 2 cells long: in a 1-row grid every column would otherwise be one.
    """
    found = {}
    first_col, first_row = grid[:, 0], grid[0, :]
    full_rows = (grid == first_col[:, None]).all(axis=1) & (grid.shape[1] >= 2)
    full_cols = (grid == first_row[None, :]).all(axis=0) & (grid.shape[0] >= 2)
    for colour in set(first_col[full_rows].tolist()) | set(first_row[full_cols].tolist()):
        found[colour] = (full_rows & (first_col == colour), full_cols & (first_row == colour))
    return found


def _even(lines: np.ndarray) -> bool:
    """Whether the gaps between the lines are all as long."""
    return len({stop - start for start, stop in _runs(~lines)}) <= 1


def separator(grid: Grid) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(colour, line rows, line columns) of the grid's separator lines, or None.

    A separator colour fills whole rows or columns and appears nowhere else (a cell's own full row
    of colour is content, not a line); failing that, one whose full lines run both ways (a lattice,
    as lines of 0 through noisy cells). Ties go to lines that cut equal cells, then to the most lines.
    """
    # every cell primitive asks this of the same search state: answer it once per grid
    return _separator(grid.tobytes(), grid.shape)


@lru_cache(maxsize=4096)
def _separator(data: bytes, shape: tuple[int, int]) -> tuple[int, np.ndarray, np.ndarray] | None:
    grid = np.frombuffer(data, dtype=np.uint8).reshape(shape)
    best, best_score = None, (-1, -1, -1)
    for colour, (rows, cols) in _line_colours(grid).items():
        if rows.all() or cols.all():
            continue
        on_lines = rows[:, None] | cols[None, :]
        pure = not ((grid == colour) & ~on_lines).any()
        if not pure and not (rows.any() and cols.any()):
            continue
        score = (int(pure), int(_even(rows) and _even(cols)), int(rows.sum() + cols.sum()))
        if score > best_score:
            best, best_score = (colour, rows, cols), score
    if best is not None:
        best[1].setflags(write=False)
        best[2].setflags(write=False)
    return best


def _equal_split(grid: Grid) -> list[Grid]:
    """Without lines: squares when one side (2 or more) divides the other, else halves of the longer side."""
    rows, cols = grid.shape
    long_axis = 0 if rows > cols else 1
    long, short = max(rows, cols), min(rows, cols)
    if long == short:
        raise DSLError("a square grid without separator lines has no equal cells")
    # 1-wide grids would split into single pixels, which no task means
    squares = long // short if long % short == 0 else 0
    parts = squares if short >= 2 and squares >= 2 else (2 if long % 2 == 0 else 0)
    if parts < 2:
        raise DSLError(f"a {rows}x{cols} grid does not split into equal cells")
    return list(np.split(grid, parts, axis=long_axis))


def cells(grid: Grid) -> tuple[list[Grid], tuple[int, int]]:
    """The grid's cells in reading order (views) and their layout (cell rows, cell columns).

    Separator lines split it where it has them (`separator`); else it splits into equal parts
    (`_equal_split`), laid out along its longer side.
    """
    found = separator(grid)
    if found is None:
        parts = _equal_split(grid)
        return parts, ((len(parts), 1) if grid.shape[0] > grid.shape[1] else (1, len(parts)))
    _, line_rows, line_cols = found
    row_runs, col_runs = _runs(~line_rows), _runs(~line_cols)
    parts = [grid[r0:r1, c0:c1] for r0, r1 in row_runs for c0, c1 in col_runs]
    return parts, (len(row_runs), len(col_runs))


def _equal_cells(grid: Grid) -> np.ndarray:
    """The cells stacked as [n, rows, cols]; DSLError unless there are 2+ of one shape."""
    parts, _ = cells(grid)
    if len(parts) < 2:
        raise DSLError("the grid has fewer than two cells")
    shape = parts[0].shape
    if any(p.shape != shape for p in parts):
        raise DSLError("the cells differ in shape")
    return np.stack(parts)


def _mask(filled: np.ndarray) -> Grid:
    return filled.astype(np.uint8)


@primitive(max_step=2)
def cells_and(grid: Grid) -> Grid:
    """1 where every cell is filled (not 0), else 0.

    >>> cells_and(np.array([[1, 1, 5, 1, 0], [0, 1, 5, 1, 1]], dtype=np.uint8)).tolist()
    [[1, 0], [0, 1]]
    """
    return _mask((_equal_cells(grid) != 0).all(axis=0))


@primitive()
def cells_or(grid: Grid) -> Grid:
    """1 where any cell is filled (not 0), else 0.

    >>> cells_or(np.array([[1, 0, 5, 0, 0], [0, 0, 5, 1, 0]], dtype=np.uint8)).tolist()
    [[1, 0], [1, 0]]
    """
    return _mask((_equal_cells(grid) != 0).any(axis=0))


@primitive()
def cells_xor(grid: Grid) -> Grid:
    """1 where exactly one cell is filled (not 0), else 0.

    >>> cells_xor(np.array([[1, 1, 5, 1, 0], [0, 0, 5, 1, 0]], dtype=np.uint8)).tolist()
    [[0, 1], [1, 0]]
    """
    return _mask((_equal_cells(grid) != 0).sum(axis=0) == 1)


@primitive()
def cells_nor(grid: Grid) -> Grid:
    """1 where no cell is filled (every cell is 0), else 0.

    >>> cells_nor(np.array([[1, 0, 5, 0, 0], [0, 0, 5, 1, 0]], dtype=np.uint8)).tolist()
    [[0, 1], [0, 1]]
    """
    return _mask(~(_equal_cells(grid) != 0).any(axis=0))


def _overlay(stack: np.ndarray) -> Grid:
    """Each later layer drawn over the earlier ones where it is not 0."""
    filled = stack != 0
    # the last filled layer at each position; a position no layer fills stays 0
    top = stack.shape[0] - 1 - np.argmax(filled[::-1], axis=0)
    picked = np.take_along_axis(stack, top[None], axis=0)[0]
    return np.where(filled.any(axis=0), picked, 0).astype(np.uint8)


@primitive()
def cells_overlay(grid: Grid) -> Grid:
    """The cells stacked in reading order, each later cell drawn over the earlier where not 0.

    >>> cells_overlay(np.array([[1, 1, 5, 2, 0], [0, 0, 5, 2, 0]], dtype=np.uint8)).tolist()
    [[2, 1], [2, 0]]
    """
    return _overlay(_equal_cells(grid))


@primitive()
def cells_underlay(grid: Grid) -> Grid:
    """The cells stacked in reading order, each earlier cell drawn over the later where not 0.

    >>> cells_underlay(np.array([[1, 1, 5, 2, 0], [0, 0, 5, 2, 0]], dtype=np.uint8)).tolist()
    [[1, 1], [2, 0]]
    """
    return _overlay(_equal_cells(grid)[::-1])


@primitive()
def majority_cell(grid: Grid) -> Grid:
    """Each position's most frequent colour over the equal cells (a tie goes to the lowest colour).

    >>> majority_cell(np.array([[1, 0, 5, 1, 2, 5, 3, 2], [0, 0, 5, 0, 0, 5, 0, 0]], dtype=np.uint8)).tolist()
    [[1, 2], [0, 0]]
    """
    stack = _equal_cells(grid)
    counts = (stack[None] == np.arange(10, dtype=np.uint8)[:, None, None, None]).sum(axis=1)
    return np.argmax(counts, axis=0).astype(np.uint8)


def _select(grid: Grid, score: Callable[[Grid], int]) -> Grid:
    """The one cell with the highest score; DSLError when no single cell has it."""
    parts, _ = cells(grid)
    if len(parts) < 2:
        raise DSLError("the grid has fewer than two cells")
    scores = [score(p) for p in parts]
    best = max(scores)
    if scores.count(best) != 1:
        raise DSLError("no single cell scores highest")
    return parts[scores.index(best)].copy()


def _filled_count(bg: int) -> Callable[[Grid], int]:
    return lambda part: int((part != bg).sum())


@primitive()
def cell_select_most_colours(grid: Grid) -> Grid:
    """The one cell with the most distinct colours.

    >>> cell_select_most_colours(np.array([[1, 0, 5, 2, 3], [0, 1, 5, 0, 0]], dtype=np.uint8)).tolist()
    [[2, 3], [0, 0]]
    """
    return _select(grid, lambda part: int(np.count_nonzero(np.bincount(part.ravel(), minlength=10))))


@primitive()
def cell_select_fewest_colours(grid: Grid) -> Grid:
    """The one cell with the fewest distinct colours.

    >>> cell_select_fewest_colours(np.array([[1, 0, 5, 2, 3], [0, 1, 5, 0, 0]], dtype=np.uint8)).tolist()
    [[1, 0], [0, 1]]
    """
    return _select(grid, lambda part: -int(np.count_nonzero(np.bincount(part.ravel(), minlength=10))))


@primitive()
def cell_select_most_filled(grid: Grid) -> Grid:
    """The one cell with the most cells not of the grid's background colour.

    >>> cell_select_most_filled(np.array([[1, 0, 5, 2, 2], [0, 0, 5, 0, 0]], dtype=np.uint8)).tolist()
    [[2, 2], [0, 0]]
    """
    return _select(grid, _filled_count(background(grid)))


@primitive()
def cell_select_least_filled(grid: Grid) -> Grid:
    """The one cell with the fewest cells not of the grid's background colour.

    >>> cell_select_least_filled(np.array([[1, 0, 5, 2, 2], [0, 0, 5, 0, 0]], dtype=np.uint8)).tolist()
    [[1, 0], [0, 0]]
    """
    filled = _filled_count(background(grid))
    return _select(grid, lambda part: -filled(part))


def _single_odd(keys: list[bytes]) -> int | None:
    """The index of the one key that occurs once while the others repeat, or None."""
    once = [i for i, key in enumerate(keys) if keys.count(key) == 1]
    return once[0] if len(once) == 1 and len(keys) > 2 else None


@primitive()
def cell_select_unique(grid: Grid) -> Grid:
    """The one cell unlike the others: by its content, else its shape (filled cells), else its colours.

    >>> grid = np.array([[1, 0, 5, 1, 0, 5, 2, 0], [0, 1, 5, 0, 1, 5, 0, 2]], dtype=np.uint8)
    >>> cell_select_unique(grid).tolist()
    [[2, 0], [0, 2]]
    """
    parts, _ = cells(grid)
    bg = background(grid)
    keyings = (
        lambda p: bytes(p.shape) + p.tobytes(),
        lambda p: bytes(p.shape) + (p != bg).tobytes(),
        lambda p: np.bincount(p.ravel(), minlength=10).astype(bool).tobytes(),
    )
    for key in keyings:
        odd = _single_odd([key(p) for p in parts])
        if odd is not None:
            return parts[odd].copy()
    raise DSLError("no single cell differs from the others")


@primitive()
def cell_colours(grid: Grid) -> Grid:
    """One pixel per cell, laid out as the cells are: the cell's most frequent colour.

    >>> cell_colours(np.array([[1, 1, 5, 2, 2], [1, 3, 5, 0, 2]], dtype=np.uint8)).tolist()
    [[1, 2]]
    """
    parts, layout = cells(grid)
    colours = [int(np.argmax(np.bincount(p.ravel(), minlength=10))) for p in parts]
    return np.array(colours, dtype=np.uint8).reshape(layout)


@primitive()
def remove_separators(grid: Grid) -> Grid:
    """The grid without its separator lines, the cells joined.

    >>> remove_separators(np.array([[1, 5, 2], [5, 5, 5], [3, 5, 4]], dtype=np.uint8)).tolist()
    [[1, 2], [3, 4]]
    """
    found = separator(grid)
    if found is None:
        raise DSLError("the grid has no separator lines")
    _, line_rows, line_cols = found
    return grid[~line_rows][:, ~line_cols].copy()


def _distinct_runs(grid: Grid) -> np.ndarray:
    """Rows that differ from the row above (the first always counts)."""
    keep = np.ones(grid.shape[0], dtype=bool)
    keep[1:] = (grid[1:] != grid[:-1]).any(axis=1)
    return keep


@primitive([("rows",), ("columns",), ("either",)])
def majority_lines(grid: Grid, axis: str) -> Grid:
    """Every row (or column) painted its most frequent colour: stripes cleaned of noise. "either":
    the axis whose stripes agree with more of the grid.

    >>> majority_lines(np.array([[1, 1, 4], [2, 5, 2]], dtype=np.uint8), "rows").tolist()
    [[1, 1, 1], [2, 2, 2]]
    """
    by_rows, by_cols = _majority_lines(grid)
    if axis == "either":
        axis = "rows" if (by_rows == grid).sum() >= (by_cols == grid).sum() else "columns"
    return (by_rows if axis == "rows" else by_cols).copy()


@per_grid
def _majority_lines(grid: Grid) -> tuple[Grid, Grid]:
    """The grid with every row, and with every column, painted its most frequent colour."""
    def along_rows(lines: Grid) -> Grid:
        n, width = lines.shape
        counts = np.bincount((lines + 10 * np.arange(n)[:, None]).ravel(), minlength=10 * n).reshape(n, 10)
        return np.repeat(counts.argmax(axis=1).astype(np.uint8)[:, None], width, axis=1)

    return frozen(along_rows(grid)), frozen(np.ascontiguousarray(along_rows(grid.T).T))


@primitive()
def compress_rows(grid: Grid) -> Grid:
    """Each run of identical adjacent rows merged into one row.

    >>> compress_rows(np.array([[1, 2], [1, 2], [3, 3]], dtype=np.uint8)).tolist()
    [[1, 2], [3, 3]]
    """
    return grid[_distinct_runs(grid)].copy()


@primitive()
def compress_columns(grid: Grid) -> Grid:
    """Each run of identical adjacent columns merged into one column.

    >>> compress_columns(np.array([[1, 1, 2], [3, 3, 3]], dtype=np.uint8)).tolist()
    [[1, 2], [3, 3]]
    """
    return grid[:, _distinct_runs(grid.T)].copy()


@primitive()
def dedupe_rows_cols(grid: Grid) -> Grid:
    """Runs of identical adjacent rows, then of identical adjacent columns, each merged into one.

    >>> dedupe_rows_cols(np.array([[1, 1, 2], [1, 1, 2], [3, 3, 3]], dtype=np.uint8)).tolist()
    [[1, 2], [3, 3]]
    """
    rows = grid[_distinct_runs(grid)]
    return rows[:, _distinct_runs(rows.T)].copy()


# Classes of a whole grid, coarse enough that demonstrations repeat them.
_CLASSES: dict[str, Callable[[Grid], bytes]] = {
    "mask": lambda g: bytes(g.shape) + (g != 0).tobytes(),
    "colours": lambda g: np.bincount(g.ravel(), minlength=10).astype(bool).tobytes(),
}


def _grid_text(grid: Grid) -> tuple:
    return tuple(map(tuple, grid.tolist()))


@lru_cache(maxsize=256)
def _outputs_recur(outputs: tuple[bytes, ...]) -> bool:
    """Whether some output occurs twice but not every output is the same; the search asks this of
    one task's outputs after every state, so it is answered once."""
    repeats = Counter(outputs)
    return len(repeats) >= 2 and max(repeats.values()) >= 2


def _infer_class_table(grids: Sequence[Grid], targets: Sequence[Grid]) -> tuple | None:
    """The first class ("mask", then "colours") under which equal classes always have equal
    outputs, as a class -> output table. Kept only when the demonstrations confirm it: at least
    half of them share their class with another, and some output recurs but not every output
    is alike (an open-ended key seen once each would just memorise the answers), and only where
    every grid is larger than its output."""
    if any(g.size <= t.size for g, t in zip(grids, targets)):
        return None  # a class condenses a larger grid: a table over small grids just memorises
    if not _outputs_recur(tuple(bytes(t.shape) + t.tobytes() for t in targets)):
        return None  # no output recurs, or every output is the same: no class to learn
    outs = [_grid_text(t) for t in targets]
    for name, key in _CLASSES.items():
        table: dict[str, tuple] = {}
        seen: Counter = Counter()
        for grid, out in zip(grids, outs):
            k = key(grid).hex()
            seen[k] += 1
            if table.setdefault(k, out) != out:
                break
        else:
            confirmed = sum(n for n in seen.values() if n >= 2)
            if len(table) >= 2 and 2 * confirmed >= len(grids):
                return name, table
    return None


@primitive(infer=_infer_class_table, lookup=True)
def output_by_class(grid: Grid, kind: str, table: dict) -> Grid:
    """The output `table` gives the grid's class (hex of its "mask" of non-zero cells, or of its
    "colours" present); DSLError for a class not in it.

    >>> output_by_class(np.array([[0, 3]], dtype=np.uint8), "mask", {"01020001": ((7,),)}).tolist()
    [[7]]
    """
    out = table.get(_CLASSES[kind](grid).hex())
    if out is None:
        raise DSLError("a class the demonstrations never showed")
    return np.array(out, dtype=np.uint8)


@primitive(max_step=1)
def stamp_halves(grid: Grid) -> Grid:
    """Two equal cells, one of a single colour (the stencil) and one of several: a copy of the stencil
    for each cell of the other, in that cell's colour, 0 where it is 0 (b190f7f5).

    >>> stamp_halves(np.array([[2, 0, 8, 0], [0, 3, 8, 8]], dtype=np.uint8)).tolist()
    [[2, 0, 0, 0], [2, 2, 0, 0], [0, 0, 3, 0], [0, 0, 3, 3]]
    """
    parts, _ = cells(grid)
    if len(parts) != 2 or parts[0].shape != parts[1].shape:
        raise DSLError("stamping needs a grid of two equal cells")
    single = [len(set(np.unique(p).tolist()) - {0}) == 1 for p in parts]
    if single.count(True) != 1:
        raise DSLError("stamping needs one cell of a single colour and one of several")
    stencil, colours = (parts[0], parts[1]) if single[0] else (parts[1], parts[0])
    rows, cols = stencil.shape
    if rows * rows > MAX_SIDE or cols * cols > MAX_SIDE:
        raise DSLError(f"stamping {rows}x{cols} cells would make a grid over {MAX_SIDE} cells a side")
    return np.kron(colours, stencil != 0).astype(np.uint8)


@primitive()
def cell_select_asymmetric(grid: Grid) -> Grid:
    """The one cell (of three or more) that lacks a mirror symmetry every other cell has: left-right,
    top-bottom, or (square cells) along a diagonal (662c240a).

    >>> grid = np.array([[1, 1, 5, 3, 3, 5, 6, 7], [2, 2, 5, 4, 4, 5, 6, 7]], dtype=np.uint8)
    >>> cell_select_asymmetric(grid).tolist()
    [[6, 7], [6, 7]]
    """
    parts, _ = cells(grid)
    if len(parts) < 3:
        raise DSLError("the grid has fewer than three cells")
    mirrors = [lambda p: p[:, ::-1], lambda p: p[::-1, :]]
    if all(p.shape[0] == p.shape[1] for p in parts):
        mirrors += [lambda p: p.T, lambda p: p[::-1, ::-1].T]
    for mirror in mirrors:
        lacking = [i for i, p in enumerate(parts) if not np.array_equal(p, mirror(p))]
        if len(lacking) == 1:
            return parts[lacking[0]].copy()
    raise DSLError("no single cell lacks a symmetry the others have")
