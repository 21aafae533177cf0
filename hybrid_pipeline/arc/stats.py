"""Summary statistics of a set of tasks (what `hybrid-arc data stats` prints)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from hybrid_pipeline.arc.tasks import Task
from hybrid_pipeline.arc.wording import plural

# Histogram bins on the larger side of a grid.
SIZE_BINS = ((1, 5), (6, 10), (11, 15), (16, 20), (21, 25), (26, 30))


@dataclass
class DatasetStats:
    tasks: int = 0
    train_pairs: int = 0
    test_inputs: int = 0
    with_solutions: int = 0
    tasks_by_test_inputs: Counter = field(default_factory=Counter)
    grid_sizes: Counter = field(default_factory=Counter)  # bin label -> grids (inputs and outputs)

    def table(self, title: str) -> str:
        lines = [title,
                 f"  tasks           {self.tasks}",
                 f"  train pairs     {self.train_pairs}",
                 f"  test inputs     {self.test_inputs}",
                 f"  with solutions  {self.with_solutions} of {plural(self.tasks, 'task')}",
                 "  test inputs per task: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.tasks_by_test_inputs.items())),
                 "  grid size (larger side), all grids:"]
        total = max(sum(self.grid_sizes.values()), 1)
        for lo, hi in SIZE_BINS:
            n = self.grid_sizes.get(f"{lo}-{hi}", 0)
            lines.append(f"    {lo:>2}-{hi:<2} {n:>6}  {'#' * round(40 * n / total)}")
        return "\n".join(lines) + "\n"


def dataset_stats(tasks: Sequence[Task]) -> DatasetStats:
    stats = DatasetStats()
    for task in tasks:
        stats.tasks += 1
        stats.train_pairs += len(task.train)
        stats.test_inputs += len(task.test)
        stats.with_solutions += task.has_solutions
        stats.tasks_by_test_inputs[len(task.test)] += 1
        for ex in (*task.train, *task.test):
            for grid in (ex.input, ex.output):
                if grid is not None:
                    side = max(grid.shape)
                    lo, hi = next(b for b in SIZE_BINS if b[0] <= side <= b[1])
                    stats.grid_sizes[f"{lo}-{hi}"] += 1
    return stats
