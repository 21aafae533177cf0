"""Pattern primitives: symmetry completion, periodic inpainting and continuation, fills and lines."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid_pipeline.dsl import DSLError, REGISTRY
from hybrid_pipeline.dsl import patterns as p
from hybrid_pipeline.dsl.registry import Context


def g(rows):
    return np.array(rows, dtype=np.uint8)


def test_complete_symmetry_fills_the_hole_from_its_mirror_image():
    grid = g([[1, 2, 2, 1], [3, 4, 4, 3], [3, 4, 9, 9], [1, 2, 2, 1]])
    np.testing.assert_array_equal(
        p.complete_symmetry(grid), g([[1, 2, 2, 1], [3, 4, 4, 3], [3, 4, 4, 3], [1, 2, 2, 1]]))
    assert grid[2, 2] == 9  # the input is left alone


def test_complete_symmetry_uses_an_axis_off_the_grid_centre():
    # Columns 1..4 mirror about 2.5; column 0 lies outside the symmetric part.
    grid = g([[5, 1, 2, 2, 1], [5, 3, 4, 7, 7], [5, 1, 2, 2, 1]])
    np.testing.assert_array_equal(
        p.complete_symmetry(grid), g([[5, 1, 2, 2, 1], [5, 3, 4, 4, 3], [5, 1, 2, 2, 1]]))


def test_complete_symmetry_uses_the_diagonal():
    grid = g([[1, 2, 3, 3], [2, 1, 3, 3], [9, 3, 1, 2], [9, 3, 2, 1]])
    np.testing.assert_array_equal(
        p.complete_symmetry(grid), g([[1, 2, 3, 3], [2, 1, 3, 3], [3, 3, 1, 2], [3, 3, 2, 1]]))


def test_complete_symmetry_raises_without_a_symmetric_grid():
    with pytest.raises(DSLError):
        p.complete_symmetry(g([[1, 2, 3], [4, 5, 6], [7, 8, 0]]))


def test_inpaint_pattern_fills_the_hole_from_the_tiling():
    grid = g([[1, 2, 1, 2], [3, 4, 3, 4], [1, 0, 0, 2], [3, 4, 3, 4]])
    np.testing.assert_array_equal(
        p.inpaint_pattern(grid), g([[1, 2, 1, 2], [3, 4, 3, 4], [1, 2, 1, 2], [3, 4, 3, 4]]))


def test_inpaint_pattern_follows_diagonal_stripes():
    grid = g([[1, 2, 3, 1, 2, 3], [2, 3, 1, 2, 0, 0], [3, 1, 2, 3, 0, 0]])
    np.testing.assert_array_equal(
        p.inpaint_pattern(grid), g([[1, 2, 3, 1, 2, 3], [2, 3, 1, 2, 3, 1], [3, 1, 2, 3, 1, 2]]))


def test_inpaint_pattern_raises_without_a_tiling():
    with pytest.raises(DSLError):
        p.inpaint_pattern(g([[1, 2, 3], [4, 5, 6], [7, 8, 0]]))


def test_crop_hole_returns_what_lies_under_the_hole():
    grid = g([[1, 2, 1, 2, 1, 2], [3, 4, 3, 4, 3, 4], [1, 2, 1, 0, 0, 2], [3, 4, 3, 0, 0, 4]])
    np.testing.assert_array_equal(p.crop_hole(grid), g([[2, 1], [4, 3]]))


def test_crop_hole_raises_on_a_grid_of_one_colour():
    with pytest.raises(DSLError):
        p.crop_hole(g([[3, 3], [3, 3]]))


def test_continue_pattern_repeats_the_content_band_over_the_grid():
    grid = g([[0, 0, 0, 0], [0, 0, 0, 0], [2, 0, 2, 0], [2, 2, 2, 2], [0, 0, 0, 0]])
    np.testing.assert_array_equal(
        p.continue_pattern(grid),
        g([[2, 0, 2, 0], [2, 2, 2, 2], [2, 0, 2, 0], [2, 2, 2, 2], [2, 0, 2, 0]]))


def test_continue_pattern_raises_when_the_content_fills_the_grid():
    with pytest.raises(DSLError):
        p.continue_pattern(g([[1, 2], [2, 1]]))


def test_symmetrize_mirrors_the_content_over_the_background():
    grid = g([[0, 0, 0], [1, 1, 0], [1, 2, 1]])
    np.testing.assert_array_equal(p.symmetrize(grid), g([[0, 0, 0], [1, 1, 1], [1, 2, 1]]))


def test_symmetrize_raises_when_mirroring_adds_nothing():
    with pytest.raises(DSLError):
        p.symmetrize(g([[0, 0, 0], [0, 3, 0], [0, 0, 0]]))


def test_is_symmetric_answers_one_for_a_left_right_mirror_and_zero_otherwise():
    np.testing.assert_array_equal(p.is_symmetric(g([[2, 0, 2], [0, 2, 0]])), g([[1]]))
    np.testing.assert_array_equal(p.is_symmetric(g([[2, 0, 0], [0, 2, 0]])), g([[0]]))


def test_fill_enclosed_colours_background_cut_off_from_the_border():
    grid = g([[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 0, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(
        p.fill_enclosed(grid, 4),
        g([[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 4, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]))


def test_fill_enclosed_does_not_leak_through_a_diagonal_gap():
    grid = g([[0, 0, 0, 0, 0], [0, 1, 1, 0, 0], [0, 1, 0, 1, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 0]])
    out = p.fill_enclosed(grid, 4)
    assert out[2, 2] == 4 and (out == 4).sum() == 1


def test_fill_enclosed_raises_when_nothing_is_enclosed():
    with pytest.raises(DSLError):
        p.fill_enclosed(g([[1, 0], [0, 0]]), 4)


def test_fill_enclosed_offers_the_new_output_colours():
    ctx = Context(colours=(0, 1, 4), output_colours=(0, 1, 4), new_colours=(4,))
    assert REGISTRY["fill_enclosed"].arg_options(ctx) == [(4,)]


def test_draw_lines_from_points_shoots_vertical_lines_over_the_background():
    grid = g([[0, 0, 0], [0, 3, 0], [0, 0, 0]])
    np.testing.assert_array_equal(
        p.draw_lines_from_points(grid, "vertical"), g([[0, 3, 0], [0, 3, 0], [0, 3, 0]]))


def test_draw_lines_from_points_draws_crosses_and_diagonals():
    grid = g([[0, 0, 0], [0, 3, 0], [0, 0, 0]])
    np.testing.assert_array_equal(
        p.draw_lines_from_points(grid, "cross"), g([[0, 3, 0], [3, 3, 3], [0, 3, 0]]))
    np.testing.assert_array_equal(
        p.draw_lines_from_points(grid, "diagonal"), g([[3, 0, 3], [0, 3, 0], [3, 0, 3]]))


def test_draw_lines_from_points_stops_at_nothing_but_keeps_other_cells():
    grid = g([[0, 0, 0, 0], [2, 0, 5, 5], [0, 0, 0, 0]])
    np.testing.assert_array_equal(
        p.draw_lines_from_points(grid, "horizontal"), g([[0, 0, 0, 0], [2, 2, 5, 5], [0, 0, 0, 0]]))


def test_draw_lines_from_points_raises_without_single_cells():
    with pytest.raises(DSLError):
        p.draw_lines_from_points(g([[0, 0, 0], [0, 1, 1], [0, 0, 0]]), "cross")


def test_connect_same_colour_joins_cells_in_a_row_and_a_column():
    grid = g([[2, 0, 2], [0, 0, 0], [2, 0, 0]])
    np.testing.assert_array_equal(
        p.connect_same_colour(grid, None), g([[2, 2, 2], [2, 0, 0], [2, 0, 0]]))


def test_connect_same_colour_draws_in_the_given_colour():
    grid = g([[8, 0, 0, 8], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(
        p.connect_same_colour(grid, 3), g([[8, 3, 3, 8], [0, 0, 0, 0], [0, 0, 0, 0]]))


def test_patterns_docstring_examples_hold():
    import doctest

    assert doctest.testmod(p, extraglobs={"np": np}).failed == 0


def test_connect_same_colour_raises_on_a_blank_grid():
    with pytest.raises(DSLError):
        p.connect_same_colour(g([[0, 0], [0, 0]]), None)


def test_extend_to_anchor_draws_each_cell_in_line_up_to_the_anchor_colour():
    grid = g([[0, 0, 0, 0, 1],
              [0, 3, 3, 0, 0],
              [2, 3, 3, 0, 0],
              [0, 0, 0, 0, 0],
              [0, 0, 4, 0, 6]])
    # The 2 and the 4 are in line with the 3s; the 1 and the 6 are not.
    np.testing.assert_array_equal(p.extend_to_anchor(grid, 3), g([[0, 0, 0, 0, 1],
                                                                  [0, 3, 3, 0, 0],
                                                                  [2, 3, 3, 0, 0],
                                                                  [0, 0, 4, 0, 0],
                                                                  [0, 0, 4, 0, 6]]))
    with pytest.raises(DSLError):
        p.extend_to_anchor(grid, 5)  # no anchor of that colour
    with pytest.raises(DSLError):
        p.extend_to_anchor(g([[3, 0, 0], [0, 0, 1]]), 3)  # nothing in line


def test_extend_to_anchor_infers_the_largest_regions_colour_when_the_anchor_colour_varies():
    grids = [g([[2, 2, 0, 0, 1], [2, 2, 0, 0, 0], [0, 0, 0, 0, 0]]),
             g([[0, 0, 0, 0], [0, 5, 5, 0], [0, 5, 5, 0], [0, 0, 0, 0], [0, 8, 0, 0]])]
    targets = [g([[2, 2, 1, 1, 1], [2, 2, 0, 0, 0], [0, 0, 0, 0, 0]]),
               g([[0, 0, 0, 0], [0, 5, 5, 0], [0, 5, 5, 0], [0, 8, 0, 0], [0, 8, 0, 0]])]
    assert REGISTRY["extend_to_anchor"].infer(grids, targets) == ("largest",)
    for grid, target in zip(grids, targets):
        np.testing.assert_array_equal(p.extend_to_anchor(grid, "largest"), target)
    # A changed cell that was not background is no extension.
    recoloured = g([[2, 2, 0, 0, 3], [2, 2, 0, 0, 0], [0, 0, 0, 0, 0]])
    assert REGISTRY["extend_to_anchor"].infer([grids[0]], [recoloured]) is None


def test_connect_pairs_fills_only_between_neighbouring_cells_of_one_colour():
    grid = g([[1, 0, 1, 0, 0, 1],
              [0, 0, 0, 0, 0, 0],
              [3, 0, 2, 0, 3, 0]])
    # Row 0: both gaps between the 1s; row 2: the 3s are not neighbours (a 2 stands between).
    np.testing.assert_array_equal(p.connect_pairs(grid, "horizontal", 2), g([[1, 2, 1, 2, 2, 1],
                                                                            [0, 0, 0, 0, 0, 0],
                                                                            [3, 0, 2, 0, 3, 0]]))
    np.testing.assert_array_equal(p.connect_pairs(grid.T, "vertical", None), g([[1, 0, 3],
                                                                               [1, 0, 0],
                                                                               [1, 0, 2],
                                                                               [1, 0, 0],
                                                                               [1, 0, 3],
                                                                               [1, 0, 0]]))
    with pytest.raises(DSLError):
        p.connect_pairs(grid, "vertical", 4)  # no column holds two cells of one colour
    with pytest.raises(DSLError):
        p.connect_pairs(grid, "sideways", None)


def test_connect_pairs_draws_along_both_diagonals():
    grid = g([[4, 0, 0, 5], [0, 0, 0, 0], [0, 0, 0, 0], [5, 0, 0, 4]])
    np.testing.assert_array_equal(p.connect_pairs(grid, "diagonal", None),
                                  g([[4, 0, 0, 5], [0, 4, 5, 0], [0, 5, 4, 0], [5, 0, 0, 4]]))


def test_connect_pairs_infers_orientation_and_the_one_new_colour():
    grids = [g([[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0]]), g([[0, 0, 0], [1, 0, 1], [0, 0, 0]])]
    targets = [g([[1, 2, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0]]), g([[0, 0, 0], [1, 2, 1], [0, 0, 0]])]
    assert REGISTRY["connect_pairs"].infer(grids, targets) == ("horizontal", 2)
    # A changed cell that was not background is no connection.
    assert REGISTRY["connect_pairs"].infer(grids, [targets[0], g([[0, 0, 0], [3, 2, 1], [0, 0, 0]])]) is None


def test_connect_elbow_runs_along_one_colours_row_then_the_other_colours_column():
    # leftwards and upwards too; the 5 on the way is not painted over
    grid = g([[0, 0, 0, 3],
              [0, 0, 0, 0],
              [2, 5, 0, 0]])
    assert p.connect_elbow(grid, 3, 2, 4).tolist() == [[4, 4, 4, 3],
                                                       [4, 0, 0, 0],
                                                       [2, 5, 0, 0]]
    assert p.connect_elbow(grid, 2, 3, 4).tolist() == [[0, 0, 0, 3],
                                                       [0, 0, 0, 4],
                                                       [2, 5, 4, 4]]
    with pytest.raises(DSLError):  # two cells of colour 2
        p.connect_elbow(g([[2, 0, 2], [0, 0, 3]]), 2, 3, 4)


def test_connect_elbow_infers_which_colour_leads_and_the_paint_from_the_demonstrations():
    grids = [g([[2, 0, 0], [0, 0, 0], [0, 0, 8]]), g([[0, 0, 8], [0, 0, 0], [0, 2, 0]])]
    targets = [g([[2, 4, 4], [0, 0, 4], [0, 0, 8]]), g([[0, 0, 8], [0, 0, 4], [0, 2, 4]])]
    assert REGISTRY["connect_elbow"].infer(grids, targets) == (2, 8, 4)
