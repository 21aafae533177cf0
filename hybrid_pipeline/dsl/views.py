"""Colours by rank: a task seen with each grid's colours renamed by how often they occur.

Many ARC rules are the same in every demonstration but for the colours: "fill the holes with the
second most common colour", where that colour differs from pair to pair, so no colour map fits
them all. Renaming each pair's colours by their rank in its input (the most frequent becomes 0, the
next 1, ...) makes such pairs alike. Colours an output brings that its input lacks (a colour the
rule always draws in) keep their identity on slots counted down from 9, so they never meet a rank.

`by_colour_rank(grid, fn, fixed)` runs `fn` on the grid in that view and renames the result back
with the grid's own ranks, which is how a program found on the view runs on a new input:

    >>> import numpy as np
    >>> def second_to_third(g):  # in the view: rank 1 becomes rank 2
    ...     return np.where(g == 1, 2, g).astype(np.uint8)
    >>> by_colour_rank([[5, 5, 5], [5, 3, 7], [3, 3, 7]], second_to_third).tolist()
    [[5, 5, 5], [5, 7, 7], [7, 7, 7]]
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from hybrid_pipeline.dsl.registry import DSLError, Grid, as_grid


def colour_order(grid: Grid) -> tuple[int, ...]:
    """The grid's colours, most frequent first (a tie to the lower colour)."""
    counts = np.bincount(grid.ravel(), minlength=10)
    return tuple(sorted((int(c) for c in np.flatnonzero(counts)), key=lambda c: (-counts[c], c)))


def _tables(order: Sequence[int], fixed: Sequence[int]) -> tuple[np.ndarray, np.ndarray] | None:
    """(colour -> view colour, view colour -> colour): a rank for each of the grid's own colours (in
    `order`), a slot from 9 down for each `fixed` colour, 255 for any other; None when ranks and
    slots would meet. A fixed colour the grid has is named by its rank, and its slot still names it
    back."""
    if len(order) + len(fixed) > 10:
        return None
    forward = np.full(256, 255, dtype=np.uint8)
    back = np.full(256, 255, dtype=np.uint8)
    for view, colour in [*zip(range(9, -1, -1), fixed), *enumerate(order)]:
        forward[colour] = view
        back[view] = colour
    return forward, back


def _rename(grid: Grid, table: np.ndarray) -> Grid | None:
    out = table[grid]
    return None if (out == 255).any() else out


def by_colour_rank(grid: Any, fn: Callable[[Grid], Grid], fixed: Sequence[int] = ()) -> Grid:
    """`fn` run on `grid` with its colours renamed by rank (`fixed` colours on slots 9, 8, ...),
    its result renamed back. DSLError when the view cannot hold the colours or the result has a
    colour the grid cannot name back."""
    grid = as_grid(grid)
    order = colour_order(grid)
    tables = _tables(order, fixed)
    if tables is None:
        raise DSLError(f"{len(order)} colours and {len(fixed)} fixed ones do not fit in 10")
    forward, back = tables
    out = _rename(np.asarray(fn(forward[grid]), dtype=np.uint8), back)
    if out is None:
        raise DSLError("the result has a colour the grid has no rank for")
    return out


class ColourView:
    """A task's train pairs and test inputs renamed by rank, and the way back for the test grids."""

    def __init__(self, train: Sequence[tuple[Grid, Grid]], tests: Sequence[Grid], fixed: tuple[int, ...]):
        self.fixed = fixed
        self.train: list[tuple[Grid, Grid]] = []
        for grid, target in train:
            tables = _tables(colour_order(grid), fixed)
            renamed = None if tables is None else (_rename(grid, tables[0]), _rename(target, tables[0]))
            if renamed is None or renamed[0] is None or renamed[1] is None:
                raise DSLError("a demonstration's colours do not fit the view")
            self.train.append(renamed)
        self.tests: list[Grid] = []
        self._back: list[np.ndarray] = []
        for grid in tests:
            tables = _tables(colour_order(grid), fixed)
            if tables is None:
                raise DSLError("a test input's colours do not fit the view")
            self.tests.append(tables[0][grid])
            self._back.append(tables[1])

    @classmethod
    def of(cls, train: Sequence[tuple[Grid, Grid]], tests: Sequence[Grid]) -> "ColourView | None":
        """The view of a task, or None when it cannot hold the colours or changes nothing."""
        fixed = tuple(sorted(set().union(*(set(np.unique(o).tolist()) - set(np.unique(i).tolist())
                                            for i, o in train))))
        try:
            view = cls(train, tests, fixed)
        except DSLError:
            return None
        same = all(np.array_equal(a, b) and np.array_equal(c, d) for (a, c), (b, d) in zip(view.train, train))
        return None if same and all(np.array_equal(a, b) for a, b in zip(view.tests, tests)) else view

    def back(self, predictions: Sequence[Grid]) -> tuple[Grid, ...] | None:
        """Test predictions made in the view, in the task's colours (None if one cannot be named)."""
        out = tuple(_rename(p, table) for p, table in zip(predictions, self._back))
        return None if any(p is None for p in out) else out
