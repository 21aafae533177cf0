import numpy as np
import pytest

from hybrid_pipeline.dsl import geometry as g
from hybrid_pipeline.dsl.registry import REGISTRY, Context, DSLError


def grid(rows):
    return np.array(rows, dtype=np.uint8)


A = grid([[1, 2, 3],
          [4, 5, 6]])


@pytest.mark.parametrize("name, expected", [
    ("rotate_90", [[4, 1], [5, 2], [6, 3]]),
    ("rotate_180", [[6, 5, 4], [3, 2, 1]]),
    ("rotate_270", [[3, 6], [2, 5], [1, 4]]),
    ("flip_horizontal", [[3, 2, 1], [6, 5, 4]]),
    ("flip_vertical", [[4, 5, 6], [1, 2, 3]]),
    ("transpose", [[1, 4], [2, 5], [3, 6]]),
    ("antitranspose", [[6, 3], [5, 2], [4, 1]]),
])
def test_dihedral_transforms_move_cells_to_their_hand_computed_places(name, expected):
    out = REGISTRY[name].fn(A)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8 and not np.shares_memory(out, A)


def test_shift_right_pushes_cells_off_the_edge_and_fills_with_background():
    np.testing.assert_array_equal(g.shift(grid([[1, 0, 2], [0, 0, 0], [0, 0, 0]]), "right"),
                                  [[0, 1, 0], [0, 0, 0], [0, 0, 0]])


def test_shift_up_fills_the_bottom_row_with_the_background_colour():
    np.testing.assert_array_equal(g.shift(grid([[7, 7], [3, 7], [7, 7]]), "up"),
                                  [[3, 7], [7, 7], [7, 7]])


def test_shift_left_and_down_move_one_cell():
    start = grid([[0, 0, 0], [0, 4, 0], [0, 0, 0]])
    np.testing.assert_array_equal(g.shift(start, "left"), [[0, 0, 0], [4, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(g.shift(start, "down"), [[0, 0, 0], [0, 0, 0], [0, 4, 0]])


def test_crop_to_content_cuts_the_box_of_non_background_cells():
    np.testing.assert_array_equal(g.crop_to_content(grid([[0, 0, 0, 0], [0, 3, 0, 0], [0, 0, 4, 0]])),
                                  [[3, 0], [0, 4]])


def test_crop_to_content_raises_on_a_single_colour_grid():
    with pytest.raises(DSLError):
        g.crop_to_content(grid([[5, 5], [5, 5]]))


def test_crop_to_colour_cuts_the_box_the_colour_spans_with_what_lies_inside():
    framed = grid([[0, 0, 0, 0, 0],
                   [0, 4, 0, 4, 0],
                   [0, 0, 7, 0, 0],
                   [0, 4, 0, 4, 0]])
    assert g.crop_to_colour(framed, 4).tolist() == [[4, 0, 4], [0, 7, 0], [4, 0, 4]]
    assert g.crop_to_colour(framed, 7).tolist() == [[7]]
    with pytest.raises(DSLError):
        g.crop_to_colour(framed, 5)


def test_trim_border_drops_the_outer_ring():
    assert g.trim_border(grid([[4, 0, 4], [0, 7, 0], [4, 0, 4]])).tolist() == [[7]]
    assert g.trim_border(grid([[1] * 4] * 3)).tolist() == [[1, 1]]
    with pytest.raises(DSLError):
        g.trim_border(grid([[1, 2, 3], [4, 5, 6]]))


def test_first_third_keeps_the_first_third_of_rows_or_columns():
    wide = grid([[4, 5, 1, 1, 5, 4], [5, 5, 5, 5, 5, 5]])
    assert g.first_third(wide, "columns").tolist() == [[4, 5], [5, 5]]
    assert g.first_third(grid([[1], [2], [3]]), "rows").tolist() == [[1]]
    with pytest.raises(DSLError):
        g.first_third(wide, "rows")


def test_crop_region_infers_a_window_anchored_to_the_far_corner():
    grids = [grid([[1, 2, 3], [4, 5, 6]]), grid([[0, 0, 0, 0], [0, 0, 7, 8], [0, 0, 9, 1]])]
    targets = [grid([[2, 3], [5, 6]]), grid([[7, 8], [9, 1]])]
    args = REGISTRY["crop_region"].infer(grids, targets)
    assert args == (-2, -2, 2, 2)
    for source, target in zip(grids, targets):
        np.testing.assert_array_equal(g.crop_region(source, *args), target)


def test_crop_region_infers_nothing_for_single_cells_or_misfits():
    assert REGISTRY["crop_region"].infer([A], [grid([[5]])]) is None
    assert REGISTRY["crop_region"].infer([A], [grid([[9, 9]])]) is None


def test_crop_region_raises_when_the_window_overruns_the_grid():
    with pytest.raises(DSLError):
        g.crop_region(A, 1, 0, 2, 2)


def test_upscale_blows_each_cell_into_a_block():
    np.testing.assert_array_equal(g.upscale(grid([[1, 2]]), 3), [[1, 1, 1, 2, 2, 2]] * 3)


def test_upscale_by_colours_scales_by_the_number_of_non_zero_colours():
    np.testing.assert_array_equal(g.upscale_by_colours(grid([[1, 0], [3, 2]])),
                                  [[1, 1, 1, 0, 0, 0]] * 3 + [[3, 3, 3, 2, 2, 2]] * 3)


def test_upscale_by_colours_raises_with_fewer_than_two_colours():
    with pytest.raises(DSLError):
        g.upscale_by_colours(grid([[0, 4], [4, 0]]))


def test_crop_to_period_cuts_the_smallest_tile_that_repeats_whole():
    repeated = grid([[1, 2, 1, 2], [3, 4, 3, 4], [1, 2, 1, 2], [3, 4, 3, 4]])
    np.testing.assert_array_equal(g.crop_to_period(repeated), [[1, 2], [3, 4]])
    # three columns repeat only as a tile cut short, so the columns stay whole
    np.testing.assert_array_equal(g.crop_to_period(grid([[1, 2, 1], [1, 2, 1]])), [[1, 2, 1]])


def test_crop_to_period_raises_when_the_grid_does_not_repeat():
    with pytest.raises(DSLError):
        g.crop_to_period(grid([[1, 2], [3, 4]]))


def test_upscale_raises_past_thirty_cells():
    with pytest.raises(DSLError):
        g.upscale(np.zeros((8, 8), dtype=np.uint8), 4)


def test_downscale_takes_the_majority_colour_of_each_block():
    np.testing.assert_array_equal(g.downscale(grid([[1, 1, 2, 2], [1, 3, 2, 2]]), 2), [[1, 2]])


def test_downscale_raises_when_blocks_do_not_divide_the_grid():
    with pytest.raises(DSLError):
        g.downscale(A, 2)


def test_tile_repeats_the_grid_down_and_across():
    np.testing.assert_array_equal(g.tile(grid([[1, 2]]), 2, 2), [[1, 2, 1, 2], [1, 2, 1, 2]])


def test_tile_raises_past_thirty_cells():
    with pytest.raises(DSLError):
        g.tile(np.zeros((11, 11), dtype=np.uint8), 3, 3)


def test_mirror_tile_reflects_the_grid_around_its_top_left_copy():
    np.testing.assert_array_equal(g.mirror_tile(grid([[1, 2], [0, 3]]), "mirror"),
                                  [[1, 2, 2, 1], [0, 3, 3, 0], [0, 3, 3, 0], [1, 2, 2, 1]])


def test_mirror_tile_inward_puts_the_grid_at_bottom_right():
    np.testing.assert_array_equal(g.mirror_tile(grid([[1, 2], [0, 3]]), "mirror_inward"),
                                  [[3, 0, 0, 3], [2, 1, 1, 2], [2, 1, 1, 2], [3, 0, 0, 3]])


def test_mirror_tile_rotate_turns_copies_around_the_centre():
    np.testing.assert_array_equal(g.mirror_tile(grid([[1, 2], [0, 3]]), "rotate"),
                                  [[1, 2, 0, 1], [0, 3, 3, 2], [2, 3, 3, 0], [1, 0, 2, 1]])


def test_mirror_tile_rotate_raises_on_a_non_square_grid():
    with pytest.raises(DSLError):
        g.mirror_tile(A, "rotate")


@pytest.mark.parametrize("side, expected", [
    ("right", [[1, 2, 2, 1], [3, 4, 4, 3]]),
    ("left", [[2, 1, 1, 2], [4, 3, 3, 4]]),
    ("below", [[1, 2], [3, 4], [3, 4], [1, 2]]),
    ("above", [[3, 4], [1, 2], [1, 2], [3, 4]]),
])
def test_concat_mirror_joins_the_grid_with_its_reflection(side, expected):
    np.testing.assert_array_equal(g.concat_mirror(grid([[1, 2], [3, 4]]), side), expected)


def test_concat_mirror_raises_past_thirty_cells():
    with pytest.raises(DSLError):
        g.concat_mirror(np.zeros((2, 16), dtype=np.uint8), "right")


def test_halves_drop_the_middle_row_or_column_of_an_odd_side():
    tall = grid([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    np.testing.assert_array_equal(g.top_half(tall), [[1, 2, 3]])
    np.testing.assert_array_equal(g.bottom_half(tall), [[7, 8, 9]])
    np.testing.assert_array_equal(g.left_half(tall), [[1], [4], [7]])
    np.testing.assert_array_equal(g.right_half(tall), [[3], [6], [9]])


def test_halves_of_an_even_side_split_it_in_two():
    np.testing.assert_array_equal(g.left_half(grid([[1, 2, 3, 4]])), [[1, 2]])
    np.testing.assert_array_equal(g.bottom_half(grid([[1], [2]])), [[2]])


def test_halves_raise_on_a_side_of_one_cell():
    with pytest.raises(DSLError):
        g.top_half(grid([[1, 2]]))


def test_self_tile_places_a_copy_at_every_non_zero_cell():
    np.testing.assert_array_equal(g.self_tile(grid([[0, 2], [0, 0]]), "nonzero"),
                                  [[0, 0, 0, 2], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_self_tile_majority_marks_the_most_frequent_colour():
    out = g.self_tile(grid([[3, 1], [3, 3]]), "majority")
    np.testing.assert_array_equal(out, [[3, 1, 0, 0], [3, 3, 0, 0], [3, 1, 3, 1], [3, 3, 3, 3]])
    assert out.dtype == np.uint8


def test_self_tile_marks_the_cells_of_one_colour():
    # cce03e0d: a copy of the grid at each 2, nothing at the 1s
    out = g.self_tile(grid([[1, 0], [2, 1]]), 2)
    np.testing.assert_array_equal(out, [[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [2, 1, 0, 0]])
    with pytest.raises(DSLError):
        g.self_tile(grid([[1]]), 12)


def test_self_tile_raises_past_thirty_cells():
    with pytest.raises(DSLError):
        g.self_tile(np.ones((6, 6), dtype=np.uint8), "nonzero")


def test_repeat_to_shape_infers_the_fixed_output_shape_and_cuts_copies_short():
    grids, targets = [grid([[1, 2]]), grid([[3], [4]])], [grid([[1, 2, 1]] * 2), grid([[3, 3, 3], [4, 4, 4]])]
    args = REGISTRY["repeat_to_shape"].infer(grids, targets)
    assert args == (2, 3)
    np.testing.assert_array_equal(g.repeat_to_shape(grids[0], *args), targets[0])


def test_repeat_to_shape_infers_nothing_when_an_output_is_smaller():
    assert REGISTRY["repeat_to_shape"].infer([A], [grid([[1]])]) is None


def test_repeat_to_shape_raises_past_thirty_cells():
    with pytest.raises(DSLError):
        g.repeat_to_shape(A, 31, 2)


def test_geometry_primitives_never_change_their_input():
    start = grid([[0, 1, 0], [2, 0, 0], [0, 0, 3]])
    copy = start.copy()
    for prim in REGISTRY.values():
        if prim.fn.__module__ != g.__name__ or prim.infer is not None:
            continue
        for args in prim.arg_options(Context(colours=(0, 1, 2, 3), input_colours=(0, 1, 2, 3))):
            try:
                prim.fn(start, *args)
            except DSLError:
                pass
    np.testing.assert_array_equal(start, copy)
