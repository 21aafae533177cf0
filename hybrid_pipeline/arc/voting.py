"""Voting over predictions made under several augmentations (the TRM paper's evaluation).

Every prediction is first mapped back to the original frame by the caller (inverse augmentation,
crop). Identical grids pool their votes; candidates rank by vote count, then by mean confidence
(the TRM's q_halt logit, or an LM's mean log-probability). A `VoteBox` belongs to one evaluation:
the reference evaluator kept votes across evaluations and so silently pooled checkpoints; here a
new evaluation makes a new box.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from hybrid_pipeline.arc.scoring import grids_equal


@dataclass
class Candidate:
    grid: np.ndarray
    votes: int
    mean_confidence: float


class VoteBox:
    """Votes per (task id, test index)."""

    def __init__(self) -> None:
        # key -> grid digest -> [grid, votes, sum of confidences]
        self._votes: dict[tuple[str, int], dict[bytes, list]] = defaultdict(dict)

    def add(self, task_id: str, test_index: int, grid: np.ndarray | None, confidence: float = 0.0) -> None:
        """One prediction; `None` (nothing decodable) casts no vote."""
        if grid is None:
            return
        grid = np.ascontiguousarray(grid, dtype=np.uint8)
        digest = bytes(grid.shape) + grid.tobytes()
        entry = self._votes[(task_id, test_index)].setdefault(digest, [grid, 0, 0.0])
        entry[1] += 1
        entry[2] += float(confidence)

    def update(self, other: VoteBox) -> None:
        """Add every vote of `other` (boxes of disjoint tasks join into one)."""
        for key, entries in other._votes.items():
            mine = self._votes[key]
            for digest, (grid, votes, confidence) in entries.items():
                entry = mine.setdefault(digest, [grid, 0, 0.0])
                entry[1] += votes
                entry[2] += confidence

    def ranked(self, task_id: str, test_index: int) -> list[Candidate]:
        """Candidates, most votes first, then higher mean confidence, then the grid voted for first."""
        cands = [Candidate(g, n, s / n) for g, n, s in self._votes.get((task_id, test_index), {}).values()]
        return sorted(cands, key=lambda c: (-c.votes, -c.mean_confidence))

    def top(self, task_id: str, test_index: int, k: int = 2) -> list[np.ndarray]:
        return [c.grid for c in self.ranked(task_id, test_index)[:k]]


def rank_of(candidates: Sequence[Candidate], expected: np.ndarray) -> int | None:
    """1-based rank of the expected grid among the candidates, None if it was never predicted."""
    return next((i for i, c in enumerate(candidates, 1) if grids_equal(c.grid, expected)), None)
