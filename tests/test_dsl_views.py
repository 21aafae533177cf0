"""Colours by rank: the view's renaming on hand-computed grids, its way back, and the search's use
of it when no program fits the task's own colours."""

from __future__ import annotations

import numpy as np

from hybrid_pipeline.arc.tasks import Example, Task
from hybrid_pipeline.dsl import InColourRanks, Overlay, Program, Step, by_colour_rank
from hybrid_pipeline.dsl.search import SearchConfig, search
from hybrid_pipeline.dsl.views import ColourView, colour_order


def _g(rows):
    return np.array(rows, dtype=np.uint8)


def test_colour_order_is_most_frequent_first_with_ties_to_the_lower_colour():
    assert colour_order(_g([[5, 5, 3], [7, 3, 5], [9, 9, 0]])) == (5, 3, 9, 0, 7)


def test_by_colour_rank_runs_a_function_on_ranks_and_names_its_result_back():
    grid = _g([[5, 5, 5], [5, 3, 7], [3, 3, 7]])  # ranks: 5 -> 0, 3 -> 1, 7 -> 2
    seen = []

    def swap_first_two_ranks(view):
        seen.append(view.tolist())
        return np.choose(view, [1, 0, 2]).astype(np.uint8)

    assert by_colour_rank(grid, swap_first_two_ranks).tolist() == [[3, 3, 3], [3, 5, 7], [5, 5, 7]]
    assert seen == [[[0, 0, 0], [0, 1, 2], [1, 1, 2]]]
    # A fixed colour sits on slot 9 in the view and comes back as itself.
    paint_slot = lambda view: np.where(view == 2, 9, view).astype(np.uint8)  # noqa: E731
    assert by_colour_rank(grid, paint_slot, (4,)).tolist() == [[5, 5, 5], [5, 3, 4], [3, 3, 4]]


def test_the_view_is_none_when_it_would_change_nothing_and_names_predictions_back():
    ranked = [(_g([[0, 0, 1]]), _g([[0, 1, 1]]))]  # 0 then 1 already: the view is the task
    assert ColourView.of(ranked, [_g([[0, 0, 1]])]) is None
    view = ColourView.of([(_g([[4, 4, 2]]), _g([[4, 2, 8]]))], [_g([[6, 6, 3]])])
    assert view.fixed == (8,)
    assert [(i.tolist(), o.tolist()) for i, o in view.train] == [([[0, 0, 1]], [[0, 1, 9]])]
    assert view.tests[0].tolist() == [[0, 0, 1]]
    assert view.back([_g([[1, 9, 0]])])[0].tolist() == [[3, 8, 6]]
    assert view.back([_g([[2]])]) is None  # the test input has no third colour to name it


def test_the_search_finds_a_rule_that_only_holds_on_ranks():
    # Rule: the frame's hole takes the colour of the lone dot, a different colour in every pair; by
    # rank the dot is always colour 2, and the rule is one program.
    def rule(g):
        out = g.copy()
        out[1, 1] = g[3, 3]
        return out

    inputs = [[[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 2]],
              [[3, 3, 3, 0], [3, 0, 3, 0], [3, 3, 3, 0], [0, 0, 0, 7]],
              [[6, 6, 6, 0], [6, 0, 6, 0], [6, 6, 6, 0], [0, 0, 0, 1]]]
    test = [[4, 4, 4, 0], [4, 0, 4, 0], [4, 4, 4, 0], [0, 0, 0, 8]]
    task = Task("ranks", tuple(Example(_g(i), rule(_g(i))) for i in inputs), (Example(_g(test)),))
    config = SearchConfig(max_expansions=40, max_seconds=None, view_budget=40)
    found = search(task, config).candidates
    best = found[0]
    assert isinstance(best.program, InColourRanks)  # before any overlay of pieces
    assert str(best.program).startswith("by_colour_rank(grid, lambda grid: ")
    assert best.predictions[0].tolist() == rule(_g(test)).tolist()
    space: dict = {}
    exec(best.program.to_python(), space)
    assert space["transform"](test).tolist() == best.predictions[0].tolist()
    without = search(task, SearchConfig(max_expansions=40, max_seconds=None, view_budget=0)).candidates
    assert all(isinstance(c.program, Overlay) for c in without)  # no program fits the task's own colours


def test_a_view_program_compares_by_text_and_counts_the_view_as_a_step():
    program = InColourRanks(Program((Step("flip_horizontal"),)), (8,))
    assert str(program) == "by_colour_rank(grid, lambda grid: flip_horizontal(grid), (8,))"
    assert len(program) == 2 and program == InColourRanks(Program((Step("flip_horizontal"),)), (8,))
    assert program([[1, 1, 2]]).tolist() == [[2, 1, 1]]
