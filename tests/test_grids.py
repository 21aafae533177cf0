import numpy as np
import pytest

from hybrid_pipeline.arc.grids import (DIHEDRAL_INVERSE, EOS, PAD, Augmentation, GridDecodeError,
                                       crop_at_eos, decode_grid, dihedral, encode_grid, inverse_dihedral,
                                       random_offset, sample_augmentations)

G = np.array([[1, 2, 3],
              [4, 5, 6]], dtype=np.uint8)

# Hand-computed images of G under each transform, in the TRM code's numbering.
EXPECTED = [
    [[1, 2, 3], [4, 5, 6]],          # 0 identity
    [[3, 6], [2, 5], [1, 4]],        # 1 rotate 90 counter-clockwise
    [[6, 5, 4], [3, 2, 1]],          # 2 rotate 180
    [[4, 1], [5, 2], [6, 3]],        # 3 rotate 270
    [[3, 2, 1], [6, 5, 4]],          # 4 left-right flip
    [[4, 5, 6], [1, 2, 3]],          # 5 up-down flip
    [[1, 4], [2, 5], [3, 6]],        # 6 transpose
    [[6, 3], [5, 2], [4, 1]],        # 7 anti-transpose
]


@pytest.mark.parametrize("index", range(8))
def test_dihedral_transforms_match_hand_computed_images(index):
    np.testing.assert_array_equal(dihedral(G, index), EXPECTED[index])
    np.testing.assert_array_equal(inverse_dihedral(dihedral(G, index), index), G)


def test_dihedral_inverse_table_composes_to_identity():
    for i, j in enumerate(DIHEDRAL_INVERSE):
        np.testing.assert_array_equal(dihedral(dihedral(G, i), j), G)


def test_colour_permutation_applies_and_inverts():
    aug = Augmentation(0, (0, 2, 3, 1, 4, 5, 6, 7, 8, 9))
    np.testing.assert_array_equal(aug.apply(np.array([[0, 1, 2, 3]], np.uint8)), [[0, 2, 3, 1]])
    np.testing.assert_array_equal(aug.invert(np.array([[0, 2, 3, 1]], np.uint8)), [[0, 1, 2, 3]])


def test_augmentation_rejects_bad_parameters():
    with pytest.raises(ValueError, match="dihedral index 8"):
        Augmentation(8)
    with pytest.raises(ValueError, match="not a permutation"):
        Augmentation(0, (0, 0, 2, 3, 4, 5, 6, 7, 8, 9))


def test_sampled_augmentations_are_distinct_deterministic_and_keep_background():
    a = sample_augmentations(200, np.random.default_rng(3))
    b = sample_augmentations(200, np.random.default_rng(3))
    assert a == b and a[0].is_identity
    assert len({x.name for x in a}) == 200
    assert all(x.colours[0] == 0 for x in a)
    assert all(Augmentation.from_name(x.name) == x for x in a)
    with pytest.raises(ValueError, match="not an augmentation name"):
        Augmentation.from_name("t1_c123")


def test_every_augmentation_round_trips_every_arc_agi_1_grid(arc1_train, arc1_eval):
    rng = np.random.default_rng(0)
    for task in arc1_train + arc1_eval:
        grids = [g for ex in (*task.train, *task.test) for g in (ex.input, ex.output)]
        for d in range(8):
            aug = Augmentation(d, (0, *rng.permutation(np.arange(1, 10)).tolist()))
            for grid in grids:
                assert np.array_equal(aug.invert(aug.apply(grid)), grid), (task.id, aug.name)
        view = aug.apply_task(task)
        assert np.array_equal(view.test[0].output, aug.apply(task.test[0].output))


def test_encode_grid_hand_computed():
    tokens = encode_grid(np.array([[0, 9]], np.uint8), offset=(1, 2)).reshape(30, 30)
    assert tokens[1, 2] == 2 and tokens[1, 3] == 11       # colours shifted by 2
    assert tokens[1, 4] == EOS                              # right edge
    assert list(tokens[2, 2:5]) == [EOS, EOS, PAD]          # bottom edge spans the grid's width
    assert tokens[0].sum() == 0 and tokens[:, :2].sum() == 0
    assert (tokens > 0).sum() == 2 + 1 + 2


def test_full_size_grid_has_no_eos_and_decodes():
    grid = np.arange(900, dtype=np.int64).reshape(30, 30) % 10
    tokens = encode_grid(grid.astype(np.uint8))
    assert (tokens == EOS).sum() == 0
    np.testing.assert_array_equal(decode_grid(tokens), grid)


def test_encode_decode_round_trip_and_translation_stays_in_canvas(arc1_eval):
    rng = np.random.default_rng(0)
    for task in arc1_eval[:50]:
        ex = task.train[0]
        np.testing.assert_array_equal(decode_grid(encode_grid(ex.output)), ex.output)
        np.testing.assert_array_equal(crop_at_eos(encode_grid(ex.output)), ex.output)
        offset = random_offset([ex.input.shape, ex.output.shape], rng)
        canvas = encode_grid(ex.input, offset).reshape(30, 30)
        r, c = offset
        np.testing.assert_array_equal(canvas[r:r + ex.input.shape[0], c:c + ex.input.shape[1]] - 2, ex.input)


def test_encode_rejects_grid_outside_canvas():
    with pytest.raises(ValueError, match="does not fit"):
        encode_grid(np.zeros((5, 5), np.uint8), offset=(26, 0))


def _canvas(rows):
    canvas = np.zeros((30, 30), np.uint8)
    for r, row in enumerate(rows):
        canvas[r, :len(row)] = row
    return canvas.reshape(900)


@pytest.mark.parametrize("rows, reason", [
    ([[1]], "row 0 starts with EOS, expected a colour: empty grid"),
    ([[2, 3, 1], [2, 1]], "row 1 has 1 colour cell, expected 2 (ragged grid)"),
    ([[2, 3, 0]], "row 0 col 2 is PAD, expected EOS"),
    ([[2, 3, 12]], "token 12 out of range"),
])
def test_decode_rejects_malformed_predictions_with_reason(rows, reason):
    with pytest.raises(GridDecodeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode_grid(_canvas(rows))


def test_crop_at_eos_takes_largest_top_left_block_like_the_trm_evaluator():
    # Row 0 has 3 colours, row 1 only 2, row 2 two, then EOS: best area is 3 rows x 2 = 6 > 1 x 3.
    tokens = _canvas([[2, 3, 4, 1], [5, 6, 1], [7, 8, 1], [1, 1]])
    np.testing.assert_array_equal(crop_at_eos(tokens), [[0, 1], [3, 4], [5, 6]])
    assert crop_at_eos(_canvas([[1]])) is None


def test_small_canvas_for_toy_experiments():
    grid = np.array([[3, 4], [5, 6]], np.uint8)
    tokens = encode_grid(grid, offset=(0, 0), canvas=4)
    assert tokens.shape == (16,)
    assert tokens.reshape(4, 4).tolist() == [[5, 6, 1, 0], [7, 8, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(decode_grid(tokens), grid)
    np.testing.assert_array_equal(crop_at_eos(tokens), grid)
    with pytest.raises(GridDecodeError, match="15 tokens is not a square canvas"):
        decode_grid(tokens[:15])
