"""What counts as a grid's rows and cells, for the verifier and for the sandbox child alike.

The sandbox child loads this module without the rest of the project (see `verifier.sandbox_child`),
so it imports numpy and nothing of the project: the limits below repeat those of
`hybrid_pipeline.arc.tasks`, and a test keeps them equal.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_SIDE = 30
NUM_COLOURS = 10


def cell_value(value: Any) -> int | None:
    """The colour of one cell, or None if it is not an integer 0..9.

    Floats with integral values pass (numpy code produces them, e.g. ``np.zeros``); bools do not,
    since a mask returned in place of a grid is a bug, not an answer.
    """
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        number = int(value)
    else:
        return None
    return number if 0 <= number < NUM_COLOURS else None


def plain_rows(candidate: Any) -> list[list[Any]] | str:
    """Nested rows of a list/tuple/array candidate as lists, or why it is not 2-D and rectangular.

    Cells are not checked here (`cell_value` does that), nor the number of rows and columns.
    """
    if isinstance(candidate, np.ndarray):
        if candidate.ndim != 2:
            return f"array with {candidate.ndim} dimensions, expected 2"
        return candidate.tolist()
    if not isinstance(candidate, (list, tuple)):
        return f"{type(candidate).__name__}, expected a grid (rows of cells), an array or text"
    rows = []
    for r, row in enumerate(candidate):
        if isinstance(row, np.ndarray) and row.ndim == 1:
            row = row.tolist()
        if not isinstance(row, (list, tuple)):
            return f"row {r} is {type(row).__name__}, expected a list of cells"
        if rows and len(row) != len(rows[0]):  # before copying: a huge row fails at once
            return f"row {r} has {len(row)} cells, expected {len(rows[0])} (grid must be rectangular)"
        rows.append(list(row))
    return rows
