import doctest

import numpy as np
import pytest

from hybrid_pipeline.dsl import objects as module
from hybrid_pipeline.dsl.objects import (count_objects_bar, crop_largest_object, crop_most_colours_object,
                                         crop_object_by, crop_rarest_colour, crop_smallest_object,
                                         crop_unique_colour_object, crop_unique_shape_object, drop_objects,
                                         fill_bboxes, fill_holes, gravity, keep_border_objects,
                                         keep_largest_object, move_until_contact, paint_interiors,
                                         recolor_objects, remove_border_objects, remove_largest_object,
                                         remove_noise, stamp_objects, surround_objects)
from hybrid_pipeline.dsl.registry import REGISTRY, Context, DSLError


def g(rows):
    return np.array(rows, dtype=np.uint8)


SCENE = g([[0, 0, 0, 0, 0, 0],
           [0, 2, 2, 0, 0, 3],
           [0, 2, 1, 0, 0, 0],
           [0, 0, 0, 0, 0, 0],
           [4, 4, 0, 0, 0, 0]])


def test_docstring_examples_hold():
    assert doctest.testmod(module).failed == 0


def test_module_stays_within_its_option_budget_for_a_four_colour_task():
    ctx = Context(colours=(0, 1, 2, 3))
    mine = [p for p in REGISTRY.values() if p.fn.__module__ == module.__name__]
    assert sum(len(p.arg_options(ctx)) for p in mine) <= 46


def test_primitives_never_modify_their_input():
    before = SCENE.copy()
    for name in ("crop_largest_object", "remove_largest_object", "fill_bboxes", "gravity", "drop_objects"):
        prim = REGISTRY[name]
        for args in prim.arg_options(Context(colours=(0, 1, 2, 3, 4))):
            try:
                prim.fn(SCENE, *args)
            except DSLError:
                pass
    np.testing.assert_array_equal(SCENE, before)


def test_crop_largest_object_multi_keeps_a_multicolour_shape_whole():
    np.testing.assert_array_equal(crop_largest_object(SCENE, "multi"), [[2, 2], [2, 1]])


def test_crop_largest_object_single_separates_colours():
    np.testing.assert_array_equal(crop_largest_object(SCENE, "single"), [[2, 2], [2, 0]])
    with pytest.raises(DSLError):
        crop_largest_object(g([[1, 0], [0, 2]]), "single")  # a tie is ambiguous
    with pytest.raises(DSLError):
        crop_largest_object(g([[0, 0], [0, 0]]), "multi")


def test_crop_smallest_object_returns_the_one_cell_object():
    grid = g([[3, 0, 0], [0, 0, 2], [0, 2, 2]])
    np.testing.assert_array_equal(crop_smallest_object(grid, "single"), [[3]])
    with pytest.raises(DSLError):
        crop_smallest_object(SCENE, "single")  # the 1 and the 3 tie
    with pytest.raises(DSLError):
        crop_smallest_object(grid, "single4")


def test_crop_unique_colour_object_finds_the_odd_colour_out():
    grid = g([[1, 0, 1, 0], [0, 0, 0, 0], [5, 5, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(crop_unique_colour_object(grid), [[5, 5]])
    with pytest.raises(DSLError):
        crop_unique_colour_object(g([[1, 0, 2], [0, 0, 0], [0, 0, 0]]))


def test_crop_unique_shape_object_finds_the_odd_shape_out():
    grid = g([[1, 0, 2, 0, 3], [0, 0, 0, 0, 3], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(crop_unique_shape_object(grid), [[3], [3]])
    with pytest.raises(DSLError):
        crop_unique_shape_object(g([[1, 0, 2], [0, 0, 0], [0, 0, 0]]))


def test_crop_most_colours_object_picks_the_multicoloured_one():
    np.testing.assert_array_equal(crop_most_colours_object(SCENE), [[2, 2], [2, 1]])
    with pytest.raises(DSLError):
        crop_most_colours_object(g([[1, 0, 2], [0, 0, 0], [0, 0, 0]]))


def test_crop_rarest_colour_boxes_every_cell_of_the_least_frequent_colour():
    grid = g([[8, 0, 8, 0], [0, 0, 0, 0], [2, 0, 8, 0], [0, 2, 0, 0]])
    np.testing.assert_array_equal(crop_rarest_colour(grid), [[2, 0], [0, 2]])
    with pytest.raises(DSLError):
        crop_rarest_colour(g([[1, 0, 0], [0, 0, 0], [0, 0, 0]]))


def test_keep_largest_object_clears_every_other_cell():
    expected = g([[0, 0, 0, 0, 0, 0], [0, 2, 2, 0, 0, 0], [0, 2, 1, 0, 0, 0],
                  [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(keep_largest_object(SCENE, "multi"), expected)


def test_remove_largest_object_clears_only_the_largest():
    expected = SCENE.copy()
    expected[1:3, 1:3] = 0
    np.testing.assert_array_equal(remove_largest_object(SCENE), expected)
    with pytest.raises(DSLError):
        remove_largest_object(g([[1, 0, 0, 1]]))


def test_keep_border_objects_keeps_objects_touching_the_edge():
    expected = g([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 3], [0, 0, 0, 0, 0, 0],
                  [0, 0, 0, 0, 0, 0], [4, 4, 0, 0, 0, 0]])
    np.testing.assert_array_equal(keep_border_objects(SCENE), expected)


def test_remove_border_objects_keeps_the_inner_objects():
    expected = g([[0, 0, 0, 0, 0, 0], [0, 2, 2, 0, 0, 0], [0, 2, 1, 0, 0, 0],
                  [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(remove_border_objects(SCENE), expected)


def test_remove_noise_drops_single_cells_only():
    grid = g([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 2, 0], [0, 0, 0, 2]])
    np.testing.assert_array_equal(remove_noise(grid, "multi"), [[0, 0, 0, 0], [0, 0, 0, 0],
                                                                [0, 0, 2, 0], [0, 0, 0, 2]])
    np.testing.assert_array_equal(remove_noise(grid, "single"), np.zeros((4, 4)))
    with pytest.raises(DSLError):
        remove_noise(g([[1, 1, 0], [0, 0, 0], [0, 0, 0]]), "multi")


def test_fill_holes_fills_only_background_walled_in_by_one_object():
    grid = g([[0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 1, 0, 1, 0, 0],
              [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]])
    expected = grid.copy()
    expected[2, 2] = 4
    np.testing.assert_array_equal(fill_holes(grid, 4), expected)
    with pytest.raises(DSLError):
        fill_holes(SCENE, 4)


def test_fill_bboxes_fills_the_background_inside_each_box():
    expected = SCENE.copy()
    np.testing.assert_array_equal(fill_bboxes(g([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]]), 5),
                                  [[0, 0, 0], [1, 5, 0], [5, 1, 0], [0, 0, 0]])
    with pytest.raises(DSLError):
        fill_bboxes(expected, 5)  # every object already fills its box


def test_surround_objects_draws_a_ring_of_background_cells():
    grid = g([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 5]])
    np.testing.assert_array_equal(surround_objects(grid, 1),
                                  [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 5]])
    with pytest.raises(DSLError):
        surround_objects(np.zeros((2, 2), dtype=np.uint8), 1)


def test_paint_interiors_recolours_cells_surrounded_by_their_own_colour():
    grid = np.zeros((5, 5), dtype=np.uint8)
    grid[:3, :3] = 1
    expected = grid.copy()
    expected[1, 1] = 0
    np.testing.assert_array_equal(paint_interiors(grid, 0), expected)
    with pytest.raises(DSLError):
        paint_interiors(SCENE, 0)


def test_gravity_down_drops_every_cell_to_the_floor():
    grid = g([[1, 0, 2], [0, 0, 0], [0, 0, 3]])
    np.testing.assert_array_equal(gravity(grid, "down"), [[0, 0, 0], [0, 0, 2], [1, 0, 3]])
    np.testing.assert_array_equal(gravity(grid, "left"), [[1, 2, 0], [0, 0, 0], [3, 0, 0]])
    np.testing.assert_array_equal(gravity(grid, "up"), [[1, 0, 2], [0, 0, 3], [0, 0, 0]])
    np.testing.assert_array_equal(gravity(grid, "right"), [[0, 1, 2], [0, 0, 0], [0, 0, 3]])
    with pytest.raises(DSLError):
        gravity(g([[0, 0], [1, 0]]), "down")


def test_drop_objects_moves_shapes_rigidly_onto_each_other():
    grid = g([[1, 1, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 2, 2]])
    np.testing.assert_array_equal(drop_objects(grid, "down"),
                                  [[0, 0, 0], [0, 0, 0], [1, 1, 0], [0, 1, 0], [0, 2, 2]])
    np.testing.assert_array_equal(drop_objects(g([[0, 0, 0], [0, 0, 0], [3, 0, 0]]), "right"),
                                  [[0, 0, 0], [0, 0, 0], [0, 0, 3]])
    with pytest.raises(DSLError):
        drop_objects(g([[0, 0, 0], [0, 0, 0], [3, 0, 0]]), "down")


def test_drop_objects_stacks_pieces_in_every_direction_in_the_order_they_land():
    # The 2 lands on the wall first; the bar of 1s behind it then rests on the 2, whole.
    grid = g([[1, 0, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(drop_objects(grid, "right"), [[0, 0, 1, 0], [0, 0, 1, 2], [0, 0, 0, 0]])
    np.testing.assert_array_equal(drop_objects(grid, "up"), [[1, 0, 2, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(drop_objects(grid, "left"), [[1, 0, 0, 0], [1, 2, 0, 0], [0, 0, 0, 0]])
    with pytest.raises(DSLError):
        drop_objects(g([[0, 0], [0, 0]]), "down")


def test_move_until_contact_slides_objects_up_to_the_anchor():
    grid = g([[2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [8, 0, 0, 0]])
    np.testing.assert_array_equal(move_until_contact(grid, 8),
                                  [[0, 0, 0, 0], [0, 0, 0, 0], [2, 0, 0, 0], [8, 0, 0, 0]])
    with pytest.raises(DSLError):
        move_until_contact(g([[2, 0, 0], [0, 0, 0], [0, 0, 8]]), 8)  # not in line
    with pytest.raises(DSLError):
        move_until_contact(grid, 5)


def test_count_objects_bar_has_one_cell_per_object():
    np.testing.assert_array_equal(count_objects_bar(g([[1, 0, 1], [0, 0, 0], [0, 1, 1]])), [[1, 1, 1]])
    with pytest.raises(DSLError):
        count_objects_bar(SCENE)


def test_recolor_objects_paints_each_object_by_its_table_entry():
    grid = g([[5, 0, 5, 5], [0, 0, 0, 0], [5, 5, 5, 0]])
    np.testing.assert_array_equal(recolor_objects(grid, "size", {1: 1, 2: 2, 3: 3}),
                                  [[1, 0, 2, 2], [0, 0, 0, 0], [3, 3, 3, 0]])
    np.testing.assert_array_equal(recolor_objects(grid, "size_extreme", {1: 4, 0: 0, -1: 6}),
                                  [[6, 0, 0, 0], [0, 0, 0, 0], [4, 4, 4, 0]])
    with pytest.raises(DSLError):
        recolor_objects(grid, "size", {1: 1})  # no colour for the other sizes


def test_recolor_objects_infers_largest_and_smallest_colours_over_every_demonstration():
    grids = [g([[5, 0, 5, 0], [5, 0, 5, 0], [5, 0, 0, 0], [0, 0, 0, 0]]),
             g([[0, 5, 0, 0], [0, 0, 0, 0], [5, 5, 5, 0], [0, 0, 0, 0]])]
    targets = [g([[1, 0, 2, 0], [1, 0, 2, 0], [1, 0, 0, 0], [0, 0, 0, 0]]),
               g([[0, 2, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]])]
    assert REGISTRY["recolor_objects"].infer(grids, targets) == ("size_extreme", {1: 1, -1: 2})


def test_recolor_objects_infers_background_rooms_by_whether_they_touch_the_border():
    grid = g([[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 0, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]])
    target = grid.copy()
    target[2, 2] = 4
    key, table, kind = REGISTRY["recolor_objects"].infer([grid, grid], [target, target])
    assert kind == "regions"
    np.testing.assert_array_equal(recolor_objects(grid, key, table, kind), target)


def test_recolor_objects_infers_a_size_mark_and_a_touching_colour_as_yes_no_keys():
    # d2abd087: objects of 3 cells turn 2, every other size 1
    # (sizes 4, 1, 3 and 3, 2: no size order or size table seen twice explains it)
    grids = [g([[5, 5, 5, 5, 0, 5], [0, 0, 0, 0, 0, 0], [5, 5, 5, 0, 0, 0]]), g([[5, 5, 5, 0, 5, 5], [0] * 6])]
    targets = [g([[1, 1, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0], [2, 2, 2, 0, 0, 0]]), g([[2, 2, 2, 0, 1, 1], [0] * 6])]
    key, table = REGISTRY["recolor_objects"].infer(grids, targets)
    assert (key, table) == ("size=3", {0: 1, 1: 2})
    np.testing.assert_array_equal(recolor_objects(g([[5, 0, 5, 5, 5, 5], [0] * 6]), key, table),
                                  [[1, 0, 1, 1, 1, 1], [0] * 6])
    # 9edfc990: background rooms beside a 1 (not diagonally) fill with 1, the others stay
    grid = g([[0, 0, 3, 0], [3, 3, 3, 1], [0, 3, 0, 3]])
    assert recolor_objects(grid, "touches=1", {0: 0, 1: 1}, "regions").tolist() == [[0, 0, 3, 1],
                                                                                   [3, 3, 3, 1],
                                                                                   [0, 3, 0, 3]]


def test_recolor_objects_fills_the_square_rooms_only():
    # 44d8ac46: holes that are full squares turn 2, the others stay
    grid = g([[5, 5, 5, 5, 5, 5, 0, 0],
              [5, 0, 0, 5, 0, 0, 5, 0],
              [5, 0, 0, 5, 0, 5, 5, 0],
              [5, 5, 5, 5, 5, 5, 0, 0],
              [0, 0, 0, 0, 0, 0, 0, 0]])
    painted = recolor_objects(grid, "square", {0: 0, 1: 2}, "regions")
    expected = grid.copy()
    expected[1:3, 1:3] = 2  # the 2x2 room; the bent room and the outside (no square) stay
    np.testing.assert_array_equal(painted, expected)


def test_recolor_objects_infers_nothing_when_a_table_would_only_memorise():
    # Bars of 2 and 3 cells, one per demonstration: only a size -> colour table fits, seen once each.
    grids = [g([[5, 5, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), g([[5, 5, 5, 0], [0, 0, 0, 0], [0, 0, 0, 0]])]
    targets = [g([[3, 3, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), g([[4, 4, 4, 0], [0, 0, 0, 0], [0, 0, 0, 0]])]
    assert REGISTRY["recolor_objects"].infer(grids, targets) is None


DOT = (3 * 31 + 1) * 31 + 1  # `_shape_int` of a one-cell object: bits "11", then 1 x 1
DIAGONALS = ((4, -1, 4), (-1, -1, -1), (4, -1, 4))


def test_stamp_objects_paints_each_keys_stencil_around_its_objects_clipped_to_the_grid():
    grid = g([[2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 3, 0], [0, 0, 0, 0]])
    table = {(2, DOT): DIAGONALS, (3, DOT): None}
    np.testing.assert_array_equal(stamp_objects(grid, table),
                                  [[2, 0, 0, 0], [0, 4, 0, 0], [0, 0, 3, 0], [0, 0, 0, 0]])


def test_stamp_objects_leaves_an_object_no_demonstration_showed_as_it_is():
    grid = g([[0, 0, 0], [0, 7, 0], [0, 0, 0]])
    np.testing.assert_array_equal(stamp_objects(grid, {(2, DOT): DIAGONALS}), grid)


def test_stamp_objects_infers_one_stencil_per_colour_from_every_occurrence():
    grids = [g([[0, 0, 0, 0, 0], [0, 2, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]),
             g([[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [2, 0, 0, 0]])]
    targets = [g([[4, 0, 4, 0, 0], [0, 2, 0, 0, 0], [4, 0, 4, 7, 0], [0, 0, 7, 1, 7], [0, 0, 0, 7, 0]]),
               g([[0, 0, 7, 0], [0, 7, 1, 7], [0, 4, 7, 0], [2, 0, 0, 0]])]
    (table,) = REGISTRY["stamp_objects"].infer(grids, targets)
    assert table == {(2, DOT): DIAGONALS, (1, DOT): ((-1, 7, -1), (7, -1, 7), (-1, 7, -1))}
    for grid, target in zip(grids, targets):
        np.testing.assert_array_equal(stamp_objects(grid, table), target)


def test_stamp_objects_infers_nothing_from_an_object_seen_once():
    grid = g([[0, 0, 0], [0, 2, 0], [0, 0, 0]])
    target = g([[4, 0, 4], [0, 2, 0], [4, 0, 4]])
    assert REGISTRY["stamp_objects"].infer([grid], [target]) is None
    # A change no object touches is no stamp either.
    far = [g([[2, 0, 0]]), g([[2, 0, 0]])]
    assert REGISTRY["stamp_objects"].infer(far, [g([[2, 0, 4]]), g([[2, 0, 4]])]) is None


def test_crop_object_by_cuts_the_object_with_the_most_cells_of_a_colour():
    grid = g([[1, 2, 0, 1, 1, 0, 3],
              [1, 1, 0, 2, 2, 0, 2],
              [0, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(crop_object_by(grid, ("most", 2)), [[1, 1], [2, 2]])
    np.testing.assert_array_equal(crop_object_by(grid, ("most", 3)), [[3], [2]])
    with pytest.raises(DSLError):
        crop_object_by(grid, ("most", 4))  # no object has a cell of it
    with pytest.raises(DSLError):
        crop_object_by(g([[2, 0, 2]]), ("most", 2))  # a tie


def test_crop_object_by_cuts_the_only_mirror_symmetric_object():
    grid = g([[1, 1, 0, 4, 4, 4],
              [0, 1, 0, 0, 4, 0],
              [0, 0, 0, 0, 0, 0],
              [3, 0, 0, 0, 0, 0],
              [3, 3, 0, 0, 0, 0]])
    np.testing.assert_array_equal(crop_object_by(grid, ("symmetric",)), [[4, 4, 4], [0, 4, 0]])
    with pytest.raises(DSLError):
        crop_object_by(g([[1, 0, 2]]), ("symmetric",))  # both single cells are symmetric


def test_crop_object_by_cuts_the_only_holed_object_and_the_most_common_one():
    grid = g([[2, 2, 2, 0, 3, 0, 0],
              [2, 0, 2, 0, 0, 0, 3],
              [2, 2, 2, 0, 0, 0, 0],
              [0, 0, 0, 0, 0, 0, 0],
              [4, 4, 0, 0, 0, 0, 3]])
    np.testing.assert_array_equal(crop_object_by(grid, ("holed",)), [[2, 2, 2], [2, 0, 2], [2, 2, 2]])
    np.testing.assert_array_equal(crop_object_by(grid, ("common",)), [[3]])  # three single 3s
    with pytest.raises(DSLError):
        crop_object_by(g([[1, 0, 2]]), ("common",))  # each occurs once
    with pytest.raises(DSLError):
        crop_object_by(g([[1, 0, 2]]), ("holed",))


def test_crop_object_by_infers_the_selector_only_where_a_demonstration_tells_objects_apart():
    grids = [g([[1, 2, 0, 1, 1], [1, 1, 0, 2, 2], [0, 0, 0, 0, 0]]),
             g([[5, 5, 0, 0], [5, 2, 0, 0], [0, 0, 0, 5], [0, 0, 0, 5]])]
    targets = [g([[1, 1], [2, 2]]), g([[5, 5], [5, 2]])]
    assert REGISTRY["crop_object_by"].infer(grids, targets) == (("most", 2),)
    # One object per demonstration: any selector would pick it, so none is inferred.
    assert REGISTRY["crop_object_by"].infer([g([[0, 0], [0, 3]])], [g([[3]])]) is None


def test_dots_slide_to_the_line_of_their_colour_over_anything_between_and_strays_vanish():
    start = g([[0, 4, 0, 3, 0, 0, 4],
               [0, 0, 0, 3, 0, 0, 4],
               [2, 0, 0, 3, 0, 0, 4]])
    # the 4 at (0, 1) crosses the 3-line to stop beside the 4-line; the 2 has no line: it vanishes
    assert module.dots_to_same_colour(start).tolist() == [[0, 0, 0, 3, 0, 4, 4],
                                                          [0, 0, 0, 3, 0, 0, 4],
                                                          [0, 0, 0, 3, 0, 0, 4]]
    with pytest.raises(DSLError):
        module.dots_to_same_colour(g([[0, 3, 3], [0, 0, 0]]))  # no single cell


def test_crop_frame_inside_takes_the_largest_outline_and_ignores_filled_boxes():
    start = g([[6, 6, 6, 0, 0, 0, 0],
               [6, 6, 6, 0, 2, 2, 2],
               [6, 6, 6, 0, 2, 0, 2],
               [0, 0, 0, 0, 2, 1, 2],
               [0, 0, 0, 0, 2, 2, 2]])
    assert module.crop_frame_inside(start).tolist() == [[0], [1]]
    with pytest.raises(DSLError):
        module.crop_frame_inside(g([[6, 6, 6], [6, 6, 6], [6, 6, 6]]))  # filled: not an outline


def test_the_per_grid_masks_do_not_leak_between_colours_or_grids():
    ring = g([[0, 0, 0], [0, 5, 0], [0, 0, 0]])
    assert surround_objects(ring, 1).tolist() == [[1, 1, 1], [1, 5, 1], [1, 1, 1]]
    assert surround_objects(ring, 2).tolist() == [[2, 2, 2], [2, 5, 2], [2, 2, 2]]
    assert surround_objects(ring, 1).tolist() == [[1, 1, 1], [1, 5, 1], [1, 1, 1]]
    other = g([[5, 0, 0], [0, 0, 0], [0, 0, 0]])
    assert surround_objects(other, 1).tolist() == [[5, 1, 0], [1, 1, 0], [0, 0, 0]]
