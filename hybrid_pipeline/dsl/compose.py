"""Outputs put together from pieces: `overlay` of several programs' grids, and how the search finds them.

Many ARC outputs are the input plus drawn parts, or several derived grids laid on one another
(lines from one colour and boxes around another; the input and its mirror image). No single chain
of primitives makes them, but each part is some chain's output. A *piece* is a program whose grids
all have their train outputs' shapes and whose painted (non-zero) cells are all right; `overlay`
paints pieces one over another, and pieces that are right where they paint never disagree. A
*base* is a program with the right shapes that gets most cells right, the rest to be painted over.
The search collects both as it goes (`Pieces.add`) and, when no single program fits, covers every
cell still wrong with as few pieces as it can (`Pieces.covers`, greedy: the piece that fixes the
most cells first), over a base or over nothing.

    >>> overlay([[1, 0], [0, 0]], [[0, 0], [0, 2]]).tolist()
    [[1, 0], [0, 2]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from hybrid_pipeline.dsl.registry import DSLError, Grid, as_grid


def overlay(*grids: Any) -> Grid:
    """Paint each grid's non-zero cells over the ones before it; all grids have one shape.

    >>> overlay([[3, 3], [0, 0]], [[0, 5], [5, 0]]).tolist()
    [[3, 5], [5, 0]]
    """
    if not grids:
        raise DSLError("overlay needs at least one grid")
    arrays = [as_grid(g) for g in grids]
    out = arrays[0].copy()
    for grid in arrays[1:]:
        if grid.shape != out.shape:
            raise DSLError(f"overlay needs grids of one shape, got {out.shape} and {grid.shape}")
        np.copyto(out, grid, where=grid != 0)
    return out


@dataclass(frozen=True)
class Piece:
    """A program prefix (its steps), the train output cells it gets right or wrong, its test grids.

    cover: for a piece, the cells it paints (all right); for a base, the cells it gets wrong. Bits
    of one integer: every train output's cells, row by row, one output after another.
    """

    steps: tuple
    cover: int
    tests: tuple[Grid, ...]


class Pieces:
    """Collects what a search meets, for `covers`: pieces (right wherever they paint; at most one
    per cover, the first met: the shortest program) and bases (the `max_bases` states of the right
    shapes with the most cells right, whose wrong cells all hold colour in the outputs)."""

    def __init__(self, targets: Sequence[Grid], limit: int = 5000, max_bases: int = 6):
        self.targets = list(targets)
        self.limit = limit
        self.max_bases = max_bases
        self.need = _bits([t != 0 for t in self.targets])
        self._by_cover: dict[int, Piece] = {}
        self._bases: list[tuple[float, int, Piece]] = []  # (-cells right, order met, base)
        self._met = 0

    def add(self, steps: tuple, train: Sequence[Grid], tests: Sequence[Grid], right: float) -> None:
        """Record a state whose train grids have their outputs' shapes (the caller checks) and get
        the share `right` of the output cells right, as a piece or a base."""
        if self.need == 0:
            return
        masks = []
        for grid, target in zip(train, self.targets):
            painted = grid != 0
            if not np.array_equal(grid[painted], target[painted]):
                self._add_base(steps, train, tests, right)
                return
            masks.append(painted)
        cover = _bits(masks)
        if cover and cover not in self._by_cover and len(self._by_cover) < self.limit:
            self._by_cover[cover] = Piece(tuple(steps), cover, tuple(tests))

    def _add_base(self, steps: tuple, train: Sequence[Grid], tests: Sequence[Grid], right: float) -> None:
        bases = self._bases
        self._met += 1
        rank = (-right, self._met)
        if len(bases) >= self.max_bases and rank >= bases[-1][:2]:
            return
        wrong = _bits([g != t for g, t in zip(train, self.targets)])
        if wrong & ~self.need:  # a wrong cell the output leaves black: nothing painted over fixes it
            return
        bases.append((*rank, Piece(tuple(steps), wrong, tuple(tests))))
        bases.sort(key=lambda e: e[:2])
        del bases[self.max_bases:]

    def covers(self, max_parts: int = 3, tries: int = 2) -> list[list[Piece]]:
        """Up to `tries` lists of 2..`max_parts` programs whose overlay makes every train output:
        a base (or the first piece) under pieces that paint every cell it gets wrong (or leaves
        black), with test grids of one shape per test input. Fewest parts first; greedy within
        one: the piece that paints the most cells still to fix first."""
        pieces = list(self._by_cover.values())  # in the order met: shorter programs first
        if self.need == 0 or not pieces:
            return []
        widest = sorted(range(len(pieces)), key=lambda i: -pieces[i].cover.bit_count())[:tries]
        starts = [(pieces[i], self.need & ~pieces[i].cover) for i in widest]
        starts += [(base, base.cover) for *_, base in self._bases]
        found: list[list[Piece]] = []
        for first, missing in starts:
            chosen = [first]
            while missing and len(chosen) < max_parts:
                best, gain = None, 0
                for piece in pieces:
                    g = (piece.cover & missing).bit_count()
                    if g > gain:
                        best, gain = piece, g
                if best is None:
                    break
                chosen.append(best)
                missing &= ~best.cover
            if missing or len(chosen) < 2 or not _same_test_shapes(chosen):
                continue
            if not any([p.steps for p in chosen] == [p.steps for p in other] for other in found):
                found.append(chosen)
        found.sort(key=len)  # stable: among equals, the order tried
        return found[:tries]


def overlay_tests(pieces: Sequence[Piece]) -> tuple[Grid, ...]:
    """The test predictions of a set of pieces: their test grids overlaid, input by input."""
    return tuple(overlay(*grids) for grids in zip(*(p.tests for p in pieces)))


def _same_test_shapes(pieces: Sequence[Piece]) -> bool:
    return all(len({g.shape for g in grids}) == 1 for grids in zip(*(p.tests for p in pieces)))


def _bits(masks: Sequence[np.ndarray]) -> int:
    flat = np.concatenate([m.ravel() for m in masks]) if masks else np.zeros(0, bool)
    return int.from_bytes(np.packbits(flat).tobytes(), "big")
