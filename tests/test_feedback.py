"""Feedback formatter (exact text, ordering, grids, caps) and the feedback embedder (shape, kinds, gradient)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from adapters import FeedbackEmbedder, problem_counts
from verifier import PROBLEM_KINDS, FeedbackFormatter, Problem

# Values shaped as the verifier writes them: shapes as [h, w], allowed shapes as a list of them, size
# limits as [smallest, largest], a grid difference as {"shape", "cells": [[row, col, colour], ...]}.
PROBLEMS = [
    Problem("palette", "test 0", expected=[0, 2, 1], got=[0, 5]),
    Problem("leave_one_out", "train 1", expected={"shape": [2, 2], "cells": [[1, 1, 4]]},
            got={"shape": [2, 2], "cells": [[1, 1, 5]]}, detail="1 of 4 cells differ"),
    Problem("parse", "test 0", detail="row 1 has 2 cells, expected 3 (ragged rows)"),
    Problem("custom_check", "", detail="looks\n  odd"),
    Problem("shape", "test 0", expected=[[3, 3], [2, 2]], got=[2, 4]),
    Problem("size", "test 0", expected=[[1, 1], [30, 30]], got=[31, 2]),
    Problem("augmentation", "test 0 under t1_c0123456789", expected=[[1, 2], [3, 4]], got=[[1, 2], [3, 5]]),
]

EXPECTED = """Problems with the previous answer:
- parse (test 0): row 1 has 2 cells, expected 3 (ragged rows)
- size (test 0): expected 1x1 to 30x30, got 31x2
- shape (test 0): expected 3x3 or 2x2, got 2x4
- palette (test 0): expected {0, 1, 2}, got {0, 5}
- leave_one_out (train 1): expected 2x2 grid with (1,1)=4, got 2x2 grid with (1,1)=5. 1 of 4 cells differ
- augmentation (test 0 under t1_c0123456789): expected 12/34, got 12/35
- custom_check: looks odd"""


def test_text_orders_by_importance_and_draws_values_compactly():
    assert FeedbackFormatter().to_text(PROBLEMS) == EXPECTED


def test_text_survives_a_json_round_trip_of_the_problems():
    # the planner stores verdicts as JSON: tuples come back as lists, numpy grids as nested lists
    restored = [Problem.from_dict(json.loads(json.dumps(p.to_dict()))) for p in PROBLEMS]
    assert FeedbackFormatter().to_text(restored) == EXPECTED
    grid = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    as_array = FeedbackFormatter().line(Problem("augmentation", "test 0", expected=grid, got=grid.T))
    assert as_array == "- augmentation (test 0): expected 01/23, got 02/13"


def test_no_problems_and_large_grids():
    formatter = FeedbackFormatter()
    assert formatter.to_text([]) == "No problems found."
    big = Problem("augmentation", "test 0", expected=np.zeros((11, 11), dtype=int).tolist(), got={3, 1})
    assert formatter.line(big) == "- augmentation (test 0): expected a 11x11 grid, got {1, 3}"
    many = {"shape": [5, 5], "cells": [[0, c, 1] for c in range(5)] + [[1, c, 2] for c in range(5)]}
    assert formatter.value(many, "leave_one_out") == "5x5 grid with (0,0)=1 (0,1)=1 (0,2)=1 (0,3)=1 (0,4)=1 (1,0)=2 ..."


def test_text_is_capped_and_says_how_many_were_left_out():
    problems = [Problem("leave_one_out", f"train {i}", detail=f"{i + 1} cells differ") for i in range(20)]
    text = FeedbackFormatter().to_text(problems, max_chars=200)
    lines = text.splitlines()
    assert len(text) <= 200 and lines[0] == "Problems with the previous answer:"
    shown = [line for line in lines[1:] if not line.startswith("- ...")]
    assert shown[0] == "- leave_one_out (train 0): 1 cells differ"
    assert lines[-1] == f"- ... and {20 - len(shown)} more problems" and 0 < len(shown) < 20
    assert len(FeedbackFormatter().to_text(problems, max_chars=10)) <= 10
    long = FeedbackFormatter(max_line_chars=40).line(Problem("parse", "test 0", detail="x" * 100))
    assert FeedbackFormatter(max_line_chars=40).to_text([Problem("parse", "test 0", detail="x" * 100)]) \
        .splitlines()[1] == long[:37] + "..."


def test_counts_map_unknown_kinds_to_other():
    counts = problem_counts([PROBLEMS, []])
    assert counts.shape == (2, len(PROBLEM_KINDS) + 1)
    row = dict(zip(PROBLEM_KINDS + ("other",), counts[0].tolist()))
    assert row["parse"] == row["shape"] == row["palette"] == row["leave_one_out"] == row["other"] == 1
    assert counts[0].sum() == len(PROBLEMS) and counts[1].sum() == 0


def test_embedder_gives_one_prefix_token_with_gradient_to_the_kinds_seen():
    torch.manual_seed(0)
    embedder = FeedbackEmbedder(llm_hidden=48, kind_dim=8, mlp_hidden=16)
    parse_twice = [Problem("parse", "test 0"), Problem("parse", "test 0"), Problem("made_up", "x")]
    out = embedder.embed([parse_twice, [], [Problem("shape", "test 0")]])
    assert out.shape == (3, 1, 48)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])
    out.square().sum().backward()
    grad = embedder.kind_embedding.grad.abs().sum(dim=1)  # per row: kinds..., other, none
    used = {PROBLEM_KINDS.index("parse"), PROBLEM_KINDS.index("shape"), len(PROBLEM_KINDS), len(PROBLEM_KINDS) + 1}
    assert all((grad[i] > 0) == (i in used) for i in range(len(grad)))
    assert embedder.mlp[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=rf"\[B, {len(PROBLEM_KINDS) + 1}\]"):
        embedder(torch.zeros(2, 3))
