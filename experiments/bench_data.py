"""Benchmark of the ARC data layer: load + validate every bundled split, build augmented TRM examples.

    python experiments/bench_data.py [--repeats 5] [--examples 1000]

Prints one table; times are the median of the repeats, in seconds, on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from hybrid_pipeline.arc.datasets import TRMDataConfig, build_trm_dataset, trm_rows
from hybrid_pipeline.arc.grids import sample_augmentations
from hybrid_pipeline.arc.tasks import BUNDLED_SPLITS, load_tasks


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--examples", type=int, default=1000, help="augmented TRM examples to build")
    args = parser.parse_args()

    rows = []
    for spec in BUNDLED_SPLITS:
        n = len(load_tasks(spec).tasks)
        rows.append((f"load + validate {spec}", f"{n} tasks", median_time(lambda s=spec: load_tasks(s), args.repeats)))
    arc1 = lambda: [load_tasks("arc-agi-1:training"), load_tasks("arc-agi-1:evaluation")]  # noqa: E731
    rows.append(("load + validate all of ARC-AGI-1", "800 tasks", median_time(arc1, args.repeats)))

    # Enough tasks x augmentations for `--examples` rows (every pair of a task becomes one row).
    tasks = load_tasks("arc-agi-1:training").tasks
    pairs_per_task = np.mean([len(t.train) + len(t.test) for t in tasks])
    n_aug = 8
    n_tasks = int(np.ceil(args.examples / (pairs_per_task * n_aug)))
    config = TRMDataConfig(num_augmentations=n_aug, seed=0)
    n_rows = len(trm_rows(tasks[:n_tasks], config)["task_id"])
    rows.append(("sample 1000 distinct augmentations", "1000", median_time(
        lambda: sample_augmentations(1000, np.random.default_rng(0)), args.repeats)))
    rows.append(("TRM rows (numpy, translated)", f"{n_rows} rows", median_time(
        lambda: trm_rows(tasks[:n_tasks], config), args.repeats)))
    rows.append(("TRM datasets.Dataset (no cache)", f"{n_rows} rows", median_time(
        lambda: build_trm_dataset(tasks[:n_tasks], config), args.repeats)))

    print(f"bench_data: {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"median of {args.repeats} runs")
    print(f"| {'what':<38} | {'size':>10} | {'seconds':>8} |")
    print(f"|{'-' * 40}|{'-' * 12}|{'-' * 10}|")
    for what, size, seconds in rows:
        print(f"| {what:<38} | {size:>10} | {seconds:8.3f} |")


if __name__ == "__main__":
    main()
