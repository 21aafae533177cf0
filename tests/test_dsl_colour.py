import numpy as np
import pytest

from hybrid_pipeline.dsl import colour as c
from hybrid_pipeline.dsl.registry import REGISTRY, Context, DSLError


def grid(rows):
    return np.array(rows, dtype=np.uint8)


def infer_recolor(grids, targets):
    return REGISTRY["recolor"].infer(grids, targets)


def test_recolor_paints_mapped_colours_and_leaves_the_rest():
    np.testing.assert_array_equal(c.recolor(grid([[1, 2], [2, 0]]), {2: 5, 1: 2}), [[2, 5], [5, 0]])


def test_recolor_infers_the_minimal_map_over_every_demonstration():
    grids = [grid([[1, 2], [0, 0]]), grid([[3, 3], [1, 0]])]
    targets = [grid([[1, 4], [0, 0]]), grid([[2, 2], [1, 0]])]
    assert infer_recolor(grids, targets) == ({2: 4, 3: 2},)


def test_recolor_infers_nothing_when_a_colour_needs_two_images():
    assert infer_recolor([grid([[1, 1]])], [grid([[2, 3]])]) is None


def test_recolor_infers_nothing_when_shapes_differ_or_nothing_changes():
    assert infer_recolor([grid([[1, 1]])], [grid([[1], [1]])]) is None
    assert infer_recolor([grid([[1, 2]])], [grid([[1, 2]])]) is None


def test_recolor_infers_nothing_from_single_cells_of_different_answers():
    assert infer_recolor([grid([[1]]), grid([[2]])], [grid([[5]]), grid([[6]])]) is None
    assert infer_recolor([grid([[1]]), grid([[2]])], [grid([[5]]), grid([[5]])]) == ({1: 5, 2: 5},)


def test_replace_colour_paints_one_colour_as_another():
    np.testing.assert_array_equal(c.replace_colour(grid([[1, 2], [2, 0]]), 2, 7), [[1, 7], [7, 0]])


def test_replace_colour_raises_when_the_colour_is_absent():
    with pytest.raises(DSLError):
        c.replace_colour(grid([[1, 2]]), 3, 7)


def test_replace_colour_enumerates_input_colours_into_new_colours():
    ctx = Context(input_colours=(0, 1, 2), new_colours=(2, 5))
    assert REGISTRY["replace_colour"].arg_options(ctx) == [(0, 2), (0, 5), (1, 2), (1, 5), (2, 5)]


def test_keep_colour_turns_every_other_cell_to_background():
    np.testing.assert_array_equal(c.keep_colour(grid([[0, 2, 3], [0, 3, 0], [0, 0, 0]]), 3),
                                  [[0, 0, 3], [0, 3, 0], [0, 0, 0]])


def test_keep_colour_raises_for_the_background_colour():
    with pytest.raises(DSLError):
        c.keep_colour(grid([[0, 0], [0, 3]]), 0)


def test_remove_colour_turns_that_colour_to_background():
    np.testing.assert_array_equal(c.remove_colour(grid([[8, 2, 3], [8, 3, 8], [8, 8, 8]]), 3),
                                  [[8, 2, 8], [8, 8, 8], [8, 8, 8]])


def test_remove_colour_raises_when_the_colour_is_absent():
    with pytest.raises(DSLError):
        c.remove_colour(grid([[0, 0], [0, 3]]), 4)


def test_set_background_repaints_the_most_frequent_colour():
    np.testing.assert_array_equal(c.set_background(grid([[0, 0], [0, 4]]), 8), [[8, 8], [8, 4]])


def test_set_background_raises_when_the_colour_is_the_background_already():
    with pytest.raises(DSLError):
        c.set_background(grid([[0, 0], [0, 4]]), 0)


def test_binarize_marks_non_background_cells_with_one():
    np.testing.assert_array_equal(c.binarize(grid([[5, 3], [5, 5], [7, 5]])), [[0, 1], [0, 0], [1, 0]])


def test_invert_mask_marks_background_cells_with_one():
    np.testing.assert_array_equal(c.invert_mask(grid([[0, 3], [5, 0], [0, 0]])), [[1, 0], [0, 1], [1, 1]])


def test_most_colour_gives_the_most_frequent_non_background_colour():
    np.testing.assert_array_equal(c.most_colour(grid([[0, 0, 0], [2, 3, 3], [0, 0, 0]])), [[3]])


def test_least_colour_gives_the_rarest_colour_present():
    np.testing.assert_array_equal(c.least_colour(grid([[0, 0, 0], [2, 3, 3], [0, 0, 0]])), [[2]])


def test_most_and_least_colour_raise_on_an_all_background_grid():
    for fn in (c.most_colour, c.least_colour):
        with pytest.raises(DSLError):
            fn(grid([[4, 4], [4, 4]]))


def test_colour_count_bar_lists_colours_most_frequent_first():
    start = grid([[0, 2, 3, 1], [3, 3, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(c.colour_count_bar(start, "column"), [[3], [1], [2]])
    np.testing.assert_array_equal(c.colour_count_bar(start, "row"), [[3, 1, 2]])


def test_colour_count_bar_raises_on_an_all_background_grid():
    with pytest.raises(DSLError):
        c.colour_count_bar(grid([[0]]), "row")


def test_colour_primitives_never_change_their_input():
    start = grid([[0, 1, 0], [2, 0, 0], [0, 0, 3]])
    copy = start.copy()
    ctx = Context.from_pairs([start], [grid([[5, 1]])])
    for prim in REGISTRY.values():
        if prim.fn.__module__ != c.__name__ or prim.infer is not None:
            continue
        for args in prim.arg_options(ctx):
            try:
                prim.fn(start, *args)
            except DSLError:
                pass
    np.testing.assert_array_equal(start, copy)


def test_swap_colours_exchanges_the_two_colours_of_a_grid():
    np.testing.assert_array_equal(c.swap_colours(grid([[4, 5, 4], [5, 5, 5]])), [[5, 4, 5], [4, 4, 4]])


def test_swap_colours_raises_unless_the_grid_has_two_colours():
    with pytest.raises(DSLError):
        c.swap_colours(grid([[1, 2, 3]]))


def test_flatten_foreground_lines_up_the_non_zero_cells_in_reading_order():
    np.testing.assert_array_equal(c.flatten_foreground(grid([[0, 2, 0], [3, 0, 0], [0, 2, 0]])), [[2, 3, 2]])


def test_flatten_foreground_keeps_non_zero_cells_even_when_they_are_the_majority():
    np.testing.assert_array_equal(c.flatten_foreground(grid([[4, 4, 0], [4, 0, 4]])), [[4, 4, 4, 4]])


def test_flatten_foreground_raises_on_an_all_zero_grid():
    with pytest.raises(DSLError):
        c.flatten_foreground(grid([[0, 0], [0, 0]]))


def infer_local_rule(grids, targets):
    return REGISTRY["local_rule"].infer(grids, targets)


def test_local_rule_paints_each_cell_by_its_colour_and_filled_neighbours():
    # key = colour + 10 * (up 1, down 2, left 4, right 8 where that neighbour is not 0)
    table = {0: 0, 1: 1, 8 * 10: 3, 4 * 10: 2}
    np.testing.assert_array_equal(c.local_rule(grid([[0, 1, 0]]), 4, "colour", table), [[3, 1, 2]])


def test_local_rule_keyed_by_filled_keeps_or_paints_cells_of_any_colour():
    # key = 1 where filled + 10 * neighbour bits; 10 keeps the cell's colour
    table = {1: 0, 1 + 8 * 10: 10, 1 + 4 * 10: 10, 12 * 10: 10}
    np.testing.assert_array_equal(c.local_rule(grid([[3, 3, 0, 4]]), 4, "filled", table), [[3, 3, 0, 0]])


def test_local_rule_refuses_a_neighbourhood_its_table_never_saw():
    with pytest.raises(DSLError):
        c.local_rule(grid([[1, 1]]), 4, "colour", {0: 0, 1: 1})


def test_local_rule_infers_the_four_neighbour_table_that_marks_cells_beside_a_pixel():
    grids = [grid([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 5]]),
             grid([[5, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])]
    targets = [grid([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2], [0, 0, 2, 5]]),
               grid([[5, 2, 0, 0], [2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])]
    neighbours, by, table = infer_local_rule(grids, targets)
    assert (neighbours, by) == (4, "filled")
    assert table == {0: 10, 1: 10, 10: 2, 20: 2, 40: 2, 80: 2}
    np.testing.assert_array_equal(c.local_rule(grid([[0, 0, 0], [0, 7, 0], [0, 0, 0]]), 4, by, table),
                                  [[0, 2, 0], [2, 7, 2], [0, 2, 0]])


def test_local_rule_keys_by_colour_when_colours_of_one_layout_change_differently():
    # a 1 and a 2 with the same filled neighbours: only the 1 turns 3, so "filled" cannot say it
    grids = [grid([[1, 0, 0, 0, 0, 0, 0, 2]] * 4)] * 2
    targets = [grid([[3, 0, 0, 0, 0, 0, 0, 2]] * 4)] * 2
    assert infer_local_rule(grids, targets)[1] == "colour"


def test_local_rule_looks_at_eight_neighbours_when_four_disagree():
    # the two corner cells share their 4-neighbour key but only one has a filled diagonal
    g = np.zeros((6, 6), dtype=np.uint8)
    g[1, 1] = 1
    t = g.copy()
    t[0:3:2, 0:3:2] = 3
    grids, targets = [g, g], [t, t]
    assert infer_local_rule(grids, targets)[0] == 8


def test_local_rule_infers_nothing_from_one_demonstration_changed_shapes_or_no_change():
    g, t = grid([[0, 1], [1, 0]] * 4), grid([[2, 1], [1, 2]] * 4)
    assert infer_local_rule([g], [t]) is None
    assert infer_local_rule([g, g], [t[:, :1], t[:, :1]]) is None
    assert infer_local_rule([g, g], [g, g]) is None


def test_local_rule_infers_nothing_when_the_table_would_memorise_the_cells():
    grids = [grid([[1, 2], [3, 4]]), grid([[5, 6], [7, 8]])]
    targets = [grid([[2, 3], [4, 5]]), grid([[6, 7], [8, 9]])]
    assert infer_local_rule(grids, targets) is None


def infer_rank_map(grids, targets):
    return REGISTRY["recolor_by_rank"].infer(grids, targets)


def test_recolor_by_rank_paints_colours_named_by_how_many_cells_they_cover():
    # counts: 0 covers 5 cells (rank 0), 2 covers 3 (rank 1), 7 covers 1 (rank 2)
    source = grid([[0, 0, 0], [2, 2, 2], [0, 0, 7]])
    np.testing.assert_array_equal(c.recolor_by_rank(source, {1: 2, 2: 0}), [[0, 0, 0], [7, 7, 7], [0, 0, 0]])


def test_recolor_by_rank_refuses_tied_counts_and_missing_ranks():
    with pytest.raises(DSLError):
        c.recolor_by_rank(grid([[1, 2]]), {0: 1})
    with pytest.raises(DSLError):
        c.recolor_by_rank(grid([[1, 1, 2]]), {1: 2})


def test_recolor_by_rank_infers_one_rank_map_where_the_colours_differ_between_demonstrations():
    grids = [grid([[0, 0, 0], [2, 2, 2], [0, 0, 7]]), grid([[0, 0, 0], [3, 3, 3], [0, 0, 4]])]
    targets = [grid([[0, 0, 0], [7, 7, 7], [0, 0, 0]]), grid([[0, 0, 0], [4, 4, 4], [0, 0, 0]])]
    assert infer_rank_map(grids, targets) == ({1: 2, 2: 0},)


def test_recolor_by_rank_infers_nothing_from_a_single_demonstration_or_a_tie():
    one = grid([[0, 0, 0], [2, 2, 2], [0, 0, 7]])
    painted = grid([[0, 0, 0], [7, 7, 7], [0, 0, 0]])
    assert infer_rank_map([one], [painted]) is None
    tied = grid([[0, 0, 2, 2]])
    assert infer_rank_map([tied, tied], [grid([[2, 2, 0, 0]])] * 2) is None
