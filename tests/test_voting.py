import numpy as np

from hybrid_pipeline.arc.voting import VoteBox, rank_of

A, B, C = np.array([[1]], np.uint8), np.array([[2]], np.uint8), np.array([[1, 1]], np.uint8)


def test_votes_pool_identical_grids_and_rank_by_votes_then_confidence():
    box = VoteBox()
    for grid, q in [(A, -1.0), (B, 2.0), (A, -3.0), (C, 5.0), (B, 0.0), (None, 9.0)]:
        box.add("t", 0, grid, q)
    ranked = box.ranked("t", 0)
    # A and B have 2 votes each; B's mean q (1.0) beats A's (-2.0); C has 1 vote.
    assert [(c.votes, c.mean_confidence) for c in ranked] == [(2, 1.0), (2, -2.0), (1, 5.0)]
    assert [c.grid.tolist() for c in ranked] == [B.tolist(), A.tolist(), C.tolist()]
    assert rank_of(ranked, A) == 2 and rank_of(ranked, np.array([[7]])) is None
    assert box.ranked("t", 1) == [] and box.top("other", 0) == []


def test_same_cells_different_shape_are_different_candidates():
    box = VoteBox()
    box.add("t", 0, np.array([[1, 1]], np.uint8))
    box.add("t", 0, np.array([[1], [1]], np.uint8))
    assert len(box.ranked("t", 0)) == 2
