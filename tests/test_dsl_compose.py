"""Outputs laid together from pieces: `overlay`, which programs count as pieces, the greedy cover,
and the search's use of it when no single program fits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hybrid_pipeline.arc.tasks import Example, Task
from hybrid_pipeline.dsl import DSLError, Overlay, Program, Step, overlay
from hybrid_pipeline.dsl.compose import Pieces, overlay_tests
from hybrid_pipeline.dsl.search import SearchConfig, search


def _g(rows):
    return np.array(rows, dtype=np.uint8)


def test_overlay_paints_later_non_zero_cells_over_earlier_ones():
    out = overlay([[1, 1, 0], [0, 0, 0]], [[0, 2, 2], [0, 0, 0]], [[0, 0, 0], [3, 0, 0]])
    assert out.tolist() == [[1, 2, 2], [3, 0, 0]]
    with pytest.raises(DSLError):
        overlay([[1]], [[1, 2]])
    with pytest.raises(DSLError):
        overlay()


def test_a_piece_paints_only_right_cells_and_one_per_cover_is_kept():
    targets = [_g([[1, 0], [0, 2]])]
    pieces = Pieces(targets)
    pieces.add(("a",), [_g([[1, 0], [0, 0]])], [_g([[5]])], 0.5)  # right where it paints: a piece
    pieces.add(("b",), [_g([[1, 0], [0, 3]])], [_g([[5]])], 0.5)  # paints a wrong colour: not one
    pieces.add(("c",), [_g([[0, 0], [0, 0]])], [_g([[5]])], 0.5)  # paints nothing: not one
    pieces.add(("d",), [_g([[1, 0], [0, 0]])], [_g([[6]])], 0.5)  # same cover as "a": the first stays
    assert [p.steps for p in pieces._by_cover.values()] == [("a",)]
    # The bits read the output's cells row by row: cell (0, 0) is the first of four.
    assert next(iter(pieces._by_cover)) == int("1000" + "0000", 2)


def test_covers_take_the_widest_piece_then_what_adds_most_until_every_output_cell_is_painted():
    targets = [_g([[1, 1, 0], [2, 0, 3]])]
    pieces = Pieces(targets)
    test = [_g([[0, 0]])]
    pieces.add(("ones",), [_g([[1, 1, 0], [0, 0, 0]])], [_g([[1, 0]])], 0.5)
    pieces.add(("two",), [_g([[0, 0, 0], [2, 0, 0]])], [_g([[0, 2]])], 0.5)
    pieces.add(("two_three",), [_g([[0, 0, 0], [2, 0, 3]])], [_g([[0, 3]])], 0.5)
    pieces.add(("wide",), [_g([[1, 1, 0], [2, 0, 0]])], test, 0.5)
    covers = pieces.covers(max_parts=3, tries=2)
    assert [[p.steps for p in c] for c in covers] == [[("wide",), ("two_three",)],
                                                      [("ones",), ("two_three",)]]
    np.testing.assert_array_equal(overlay_tests(covers[1])[0], [[1, 3]])
    assert pieces.covers(max_parts=1) == []  # one piece never covers: it would fit on its own


def test_a_base_that_gets_most_cells_right_is_fixed_by_pieces_painted_over_it():
    targets = [_g([[1, 1], [2, 0]])]
    pieces = Pieces(targets, max_bases=1)
    pieces.add(("near",), [_g([[1, 3], [2, 0]])], [_g([[7]])], 0.75)  # one cell wrong: a base
    pieces.add(("far",), [_g([[3, 3], [3, 0]])], [_g([[8]])], 0.25)  # worse: not kept (one base)
    pieces.add(("black",), [_g([[1, 1], [2, 5]])], [_g([[9]])], 0.8)  # wrong where the output is 0
    pieces.add(("fix",), [_g([[0, 1], [0, 0]])], [_g([[0]])], 0.5)
    assert [[p.steps for p in c] for c in pieces.covers()] == [[("near",), ("fix",)]]


def test_an_overlay_program_runs_prints_and_compares_like_a_program():
    program = Overlay((Program((Step("flip_horizontal"),)), Program()))
    assert str(program) == "overlay(flip_horizontal(grid), grid)"
    assert len(program) == 2
    assert program([[1, 0, 0]]).tolist() == [[1, 0, 1]]
    assert program == Overlay((Program((Step("flip_horizontal"),)), Program())) != Program()
    space: dict = {}
    exec(program.to_python(), space)
    assert space["transform"]([[0, 2, 0, 0]]).tolist() == [[0, 2, 2, 0]]
    with pytest.raises(ValueError):
        Overlay((Program(),))


def test_the_search_lays_pieces_together_when_no_single_program_fits():
    # Rule: the 1s mirrored left-right and the 2s mirrored top-bottom, on one grid.
    def rule(g):
        return overlay(np.fliplr(np.where(g == 1, g, 0)), np.flipud(np.where(g == 2, g, 0)))

    inputs = [_g([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 2, 0, 0]]),
              _g([[0, 0, 0, 0], [1, 0, 0, 2], [0, 0, 0, 0], [0, 0, 0, 0]]),
              _g([[0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]])]
    test = _g([[0, 0, 0, 0], [0, 0, 0, 0], [2, 1, 0, 0], [0, 0, 0, 0]])
    task = Task("two mirrors", tuple(Example(i, rule(i)) for i in inputs), (Example(test, rule(test)),))
    config = SearchConfig(max_expansions=120, max_seconds=None)
    best = search(task.without_solutions(), config).candidates[0]
    assert str(best.program) == ("overlay(flip_horizontal(keep_colour(grid, 1)), "
                                 "flip_vertical(keep_colour(grid, 2)))")
    assert best.fits_all
    np.testing.assert_array_equal(best.predictions[0], [[0, 0, 0, 0], [2, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(best.program(test), best.predictions[0])
    off = search(task.without_solutions(), replace(config, max_overlay=0))
    assert not any(isinstance(c.program, Overlay) for c in off.candidates)
