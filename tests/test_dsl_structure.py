"""Structure primitives: cells at separator lines or equal splits, cell combiners and selectors, and
merging repeated rows and columns; each on a hand-computed grid."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from hybrid_pipeline.dsl import structure
from hybrid_pipeline.dsl.registry import REGISTRY, DSLError


def g(rows) -> np.ndarray:
    return np.array(rows, dtype=np.uint8)


# Two 2x2 cells side by side, split by a column of 5.
PAIR = g([[1, 0, 5, 2, 0],
          [0, 0, 5, 2, 2]])
# Two 2x2 cells stacked, no separator: the grid splits in equal squares.
STACKED = g([[3, 0],
             [0, 0],
             [4, 4],
             [0, 4]])


def test_every_docstring_example_holds():
    assert doctest.testmod(structure).failed == 0


def test_every_structure_primitive_has_one_option_or_is_inferred_and_has_a_docstring_example():
    mine = [p for p in REGISTRY.values() if p.fn.__module__ == structure.__name__]
    assert len(mine) == 21
    assert [p.name for p in mine if p.infer is not None] == ["output_by_class"]
    for prim in mine:
        assert prim.options is None or prim.name == "majority_lines", prim.name  # its axis: 3 options
        assert ">>>" in prim.doc, prim.name


def test_separator_prefers_a_colour_found_only_on_its_lines():
    grid = g([[2, 2, 2],
              [4, 4, 4],
              [0, 2, 0]])
    colour, rows, cols = structure.separator(grid)
    assert colour == 4
    np.testing.assert_array_equal(rows, [False, True, False])
    assert not cols.any()


def test_separator_accepts_a_lattice_of_a_colour_that_also_appears_inside_cells():
    grid = g([[1, 0, 0, 2],
              [0, 0, 0, 0],
              [3, 0, 0, 0]])
    colour, rows, cols = structure.separator(grid)
    assert colour == 0
    parts, layout = structure.cells(grid)
    assert layout == (2, 2)
    np.testing.assert_array_equal(parts[0], [[1]])
    np.testing.assert_array_equal(parts[1], [[2]])
    np.testing.assert_array_equal(parts[2], [[3]])


def test_separator_is_none_when_a_full_row_of_colour_is_also_content():
    grid = g([[1, 1, 1],
              [0, 1, 0],
              [0, 0, 2]])
    assert structure.separator(grid) is None


def test_cells_split_a_grid_without_lines_into_squares_along_its_longer_side():
    parts, layout = structure.cells(g([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]]))
    assert layout == (1, 3)
    np.testing.assert_array_equal(parts[2], [[5, 6], [2, 1]])


def test_cells_split_a_one_row_grid_into_halves_not_pixels():
    parts, layout = structure.cells(g([[1, 2, 3, 4]]))
    assert layout == (1, 2)
    np.testing.assert_array_equal(parts[1], [[3, 4]])


def test_cells_raise_on_a_square_grid_without_lines():
    with pytest.raises(DSLError):
        structure.cells(g([[1, 2], [3, 4]]))


def test_cells_and_marks_positions_filled_in_every_cell():
    np.testing.assert_array_equal(structure.cells_and(PAIR), [[1, 0], [0, 0]])
    np.testing.assert_array_equal(structure.cells_and(STACKED), [[1, 0], [0, 0]])


def test_cells_or_marks_positions_filled_in_any_cell():
    np.testing.assert_array_equal(structure.cells_or(PAIR), [[1, 0], [1, 1]])


def test_cells_xor_marks_positions_filled_in_exactly_one_cell():
    np.testing.assert_array_equal(structure.cells_xor(STACKED), [[0, 1], [0, 1]])


def test_cells_xor_of_three_cells_counts_exactly_one_not_an_odd_number():
    grid = g([[1, 5, 1, 5, 1], [1, 5, 0, 5, 0]])
    np.testing.assert_array_equal(structure.cells_xor(grid), [[0], [1]])


def test_cells_nor_marks_positions_empty_in_every_cell():
    np.testing.assert_array_equal(structure.cells_nor(PAIR), [[0, 1], [0, 0]])


def test_cell_combiners_raise_when_the_cells_differ_in_shape():
    grid = g([[1, 5, 2, 2], [1, 5, 2, 2]])
    for combine in (structure.cells_and, structure.cells_or, structure.cells_xor, structure.cells_nor,
                    structure.cells_overlay, structure.cells_underlay, structure.majority_cell):
        with pytest.raises(DSLError):
            combine(grid)


def test_cell_combiners_raise_on_a_single_cell():
    with pytest.raises(DSLError):
        structure.cells_or(g([[0, 0, 0], [0, 1, 0], [0, 0, 0]]))


def test_cells_overlay_draws_later_cells_over_earlier_ones():
    np.testing.assert_array_equal(structure.cells_overlay(PAIR), [[2, 0], [2, 2]])
    np.testing.assert_array_equal(structure.cells_overlay(STACKED), [[4, 4], [0, 4]])


def test_cells_underlay_draws_earlier_cells_over_later_ones():
    np.testing.assert_array_equal(structure.cells_underlay(PAIR), [[1, 0], [2, 2]])
    np.testing.assert_array_equal(structure.cells_underlay(STACKED), [[3, 4], [0, 4]])


def test_cell_combiners_leave_their_input_unchanged():
    before = PAIR.copy()
    structure.cells_overlay(PAIR)
    structure.majority_cell(PAIR)
    np.testing.assert_array_equal(PAIR, before)


def test_majority_cell_takes_each_positions_most_frequent_colour():
    grid = g([[1, 2, 5, 1, 3, 5, 4, 3],
              [0, 0, 5, 6, 0, 5, 0, 7]])
    np.testing.assert_array_equal(structure.majority_cell(grid), [[1, 3], [0, 0]])


def test_cell_select_most_colours_picks_the_most_varied_cell():
    grid = g([[0, 0, 5, 2, 3, 5, 4, 0],
              [0, 0, 5, 0, 2, 5, 4, 4]])
    np.testing.assert_array_equal(structure.cell_select_most_colours(grid), [[2, 3], [0, 2]])


def test_cell_select_most_colours_raises_on_a_tie():
    with pytest.raises(DSLError):
        structure.cell_select_most_colours(g([[1, 0, 5, 2, 0], [0, 0, 5, 0, 0]]))


def test_cell_select_fewest_colours_picks_the_plainest_cell():
    grid = g([[0, 0, 5, 2, 3, 5, 4, 0],
              [0, 0, 5, 0, 2, 5, 4, 4]])
    np.testing.assert_array_equal(structure.cell_select_fewest_colours(grid), [[0, 0], [0, 0]])


def test_cell_select_most_filled_counts_cells_off_the_background():
    np.testing.assert_array_equal(structure.cell_select_most_filled(PAIR), [[2, 0], [2, 2]])


def test_cell_select_least_filled_counts_cells_off_the_background():
    np.testing.assert_array_equal(structure.cell_select_least_filled(PAIR), [[1, 0], [0, 0]])


def test_cell_select_least_filled_raises_on_a_tie():
    with pytest.raises(DSLError):
        structure.cell_select_least_filled(g([[1, 0, 5, 0, 2], [0, 0, 5, 0, 0]]))


def test_cell_select_unique_picks_the_cell_whose_shape_alone_differs():
    grid = g([[1, 0, 5, 2, 0, 5, 3, 3],
              [0, 1, 5, 0, 2, 5, 0, 0]])
    np.testing.assert_array_equal(structure.cell_select_unique(grid), [[3, 3], [0, 0]])


def test_cell_select_unique_picks_the_cell_whose_colour_alone_differs():
    grid = g([[1, 0, 5, 0, 1, 5, 2, 2],
              [0, 1, 5, 1, 1, 5, 0, 2]])
    np.testing.assert_array_equal(structure.cell_select_unique(grid), [[2, 2], [0, 2]])


def test_cell_select_unique_raises_when_two_cells_just_differ():
    with pytest.raises(DSLError):
        structure.cell_select_unique(PAIR)


def test_cell_colours_gives_one_pixel_per_cell_in_the_cells_layout():
    grid = g([[1, 1, 5, 2, 2],
              [1, 3, 5, 2, 0],
              [5, 5, 5, 5, 5],
              [4, 4, 5, 0, 0],
              [4, 4, 5, 0, 6]])
    np.testing.assert_array_equal(structure.cell_colours(grid), [[1, 2], [4, 0]])


def test_cell_colours_raises_on_a_square_grid_without_lines():
    with pytest.raises(DSLError):
        structure.cell_colours(g([[1, 2], [3, 4]]))


def test_remove_separators_joins_the_cells_without_their_lines():
    grid = g([[1, 2, 5, 3],
              [5, 5, 5, 5],
              [4, 0, 5, 6]])
    np.testing.assert_array_equal(structure.remove_separators(grid), [[1, 2, 3], [4, 0, 6]])


def test_remove_separators_raises_without_lines():
    with pytest.raises(DSLError):
        structure.remove_separators(g([[1, 2], [3, 4]]))


def test_compress_rows_merges_only_adjacent_identical_rows():
    grid = g([[1, 2], [1, 2], [3, 3], [1, 2]])
    np.testing.assert_array_equal(structure.compress_rows(grid), [[1, 2], [3, 3], [1, 2]])


def test_compress_columns_merges_only_adjacent_identical_columns():
    grid = g([[1, 1, 2, 1], [3, 3, 4, 3]])
    np.testing.assert_array_equal(structure.compress_columns(grid), [[1, 2, 1], [3, 4, 3]])


def test_dedupe_rows_cols_turns_a_block_picture_into_one_pixel_per_block():
    grid = g([[8, 8, 7],
              [8, 8, 7],
              [3, 3, 4]])
    np.testing.assert_array_equal(structure.dedupe_rows_cols(grid), [[8, 7], [3, 4]])


def infer_class_table(grids, targets):
    return REGISTRY["output_by_class"].infer(grids, targets)


def test_output_by_class_looks_up_the_output_of_the_grids_filled_cells():
    table = {"01020001": ((7,),), "01020100": ((8,),)}
    np.testing.assert_array_equal(structure.output_by_class(g([[5, 0]]), "mask", table), [[8]])
    with pytest.raises(DSLError):
        structure.output_by_class(g([[5, 5]]), "mask", table)


def test_output_by_class_infers_a_table_from_repeated_colour_sets():
    grids = [g([[1, 0], [0, 1]]), g([[1, 1], [0, 0]]), g([[2, 0], [0, 0]]), g([[0, 2], [2, 2]])]
    targets = [g([[5]]), g([[5]]), g([[6]]), g([[6]])]
    kind, table = infer_class_table(grids, targets)
    assert kind == "colours"  # the masks differ, the colour sets {0, 1} and {0, 2} recur
    np.testing.assert_array_equal(structure.output_by_class(g([[0, 0], [2, 0]]), kind, table), [[6]])


def test_output_by_class_infers_nothing_when_no_class_or_output_recurs():
    distinct = [g([[1]]), g([[2]]), g([[3]])]
    assert infer_class_table(distinct, [g([[5]]), g([[5]]), g([[6]])]) is None
    assert infer_class_table([g([[1]]), g([[1]])], [g([[5]]), g([[5]])]) is None


def test_output_by_class_infers_nothing_when_the_grids_are_no_larger_than_their_outputs():
    grids = [g([[1]]), g([[1]]), g([[2]]), g([[2]])]
    targets = [g([[5, 5]]), g([[5, 5]]), g([[6, 6]]), g([[6, 6]])]
    assert infer_class_table(grids, targets) is None


def test_majority_lines_paint_each_row_or_column_its_commonest_colour():
    noisy = g([[1, 1, 8, 3],
               [1, 9, 8, 3],
               [4, 1, 8, 3]])
    assert structure.majority_lines(noisy, "columns").tolist() == [[1, 1, 8, 3]] * 3
    assert structure.majority_lines(noisy, "rows").tolist() == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]
    # "either" picks the columns here: their stripes agree with 10 of 12 cells, the rows' with 5
    assert structure.majority_lines(noisy, "either").tolist() == [[1, 1, 8, 3]] * 3


def test_stamp_halves_draws_the_one_coloured_cell_at_each_cell_of_the_other_in_its_colour():
    # the stencil (one colour, 8) may sit on either side; its colour never shows
    for grid in (g([[8, 0, 2, 0], [8, 8, 0, 3]]), g([[2, 0, 8, 0], [0, 3, 8, 8]])):
        np.testing.assert_array_equal(structure.stamp_halves(grid),
                                      [[2, 0, 0, 0], [2, 2, 0, 0], [0, 0, 3, 0], [0, 0, 3, 3]])
    with pytest.raises(DSLError):  # both cells of one colour: no stencil to tell
        structure.stamp_halves(g([[8, 0, 2, 0], [8, 8, 0, 2]]))
    with pytest.raises(DSLError):  # 6x6 cells would make a 36x36 grid
        structure.stamp_halves(np.concatenate([np.full((6, 6), 8), np.eye(6) * 2 + 1], axis=1).astype(np.uint8))


def test_cell_select_asymmetric_picks_the_one_cell_lacking_a_symmetry_the_others_have():
    # 662c240a's first demonstration: two cells equal their transpose, the third does not
    grid = g([[8, 9, 8], [9, 8, 8], [8, 8, 8],
              [2, 2, 1], [2, 2, 1], [1, 1, 2],
              [4, 4, 4], [4, 4, 3], [3, 3, 3]])
    np.testing.assert_array_equal(structure.cell_select_asymmetric(grid), [[4, 4, 4], [4, 4, 3], [3, 3, 3]])
    with pytest.raises(DSLError):  # every cell symmetric every way
        structure.cell_select_asymmetric(g([[1, 5, 2, 5, 3]]))
    with pytest.raises(DSLError):  # two cells are too few to tell the odd one
        structure.cell_select_asymmetric(PAIR)
