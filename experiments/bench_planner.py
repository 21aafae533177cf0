"""Benchmark of the planner loop with the offline default models.

    python experiments/bench_planner.py [--limit 8] [--proposers hybrid,llm,trm] [--threads 1]

Runs `hybrid-arc plan`'s library path (`build_planner` + `run_plan`) on the first `--limit`
ARC-AGI-1 evaluation tasks whose grids are at most 10x10, then prints one table:
- proposer time: the sum, over attempts, of the time spent inside `propose` (model calls, program
  runs) and inside `predict` for the verifier's consistency checks (leave-one-out and augmentations;
  model calls of the hybrid and LLM proposers), each also shown alone;
- planner overhead: everything else in the run's wall time (the verifier's own checks, feedback
  text, choosing answers, scoring, writing results.jsonl / submission.json / summary.json /
  report.html), as a fraction of proposer time (the aim: under 5%);
- sandbox start-up: wall time of `run_program` for a trivial program on one grid (a fresh isolated
  interpreter each time), median of `--repeats`;
- tasks per minute of the whole run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--proposers", default="hybrid,llm,trm")
    parser.add_argument("--attempts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-consistency-checks", action="store_true", help="as `hybrid-arc plan`'s flag")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from hybrid_pipeline.arc.tasks import load_tasks
    from planner.build import PlanSetup, build_planner
    from planner.run import run_plan
    from verifier.sandbox import run_program

    tasks = [t for t in load_tasks("arc-agi-1:evaluation").tasks
             if all(max(g.shape) <= 10 for ex in (*t.train, *t.test) for g in (ex.input, ex.output))][:args.limit]
    planner, meta = build_planner(PlanSetup(proposers=tuple(args.proposers.split(",")), attempts=args.attempts,
                                            consistency_checks=not args.no_consistency_checks))
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        run = run_plan(planner, tasks, out, meta=meta, progress=False)
        wall = time.perf_counter() - started
    attempts = [a for r in run.records for t in r["test"] for a in t["attempts"]]
    propose_s = sum(a["seconds"] for a in attempts)
    predict_s = sum(a["predict_seconds"] for a in attempts)
    check_s = sum(a["check_seconds"] for a in attempts)
    proposer_s = propose_s + predict_s
    overhead_s = wall - proposer_s

    grid = np.zeros((3, 3), dtype=np.uint8)
    startup = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        run_program("def transform(grid):\n    return grid\n", [grid])
        startup.append(time.perf_counter() - t0)

    print(f"planner with {args.proposers} (offline defaults, random weights), {len(tasks)} tasks of "
          f"arc-agi-1:evaluation (grids <= 10x10), {len(attempts)} attempts; {platform.processor() or platform.machine()}, "
          f"torch threads {args.threads}, consistency checks {'off' if args.no_consistency_checks else 'on'}")
    rows = [("run wall time", f"{wall:.2f} s"),
            ("proposer time", f"{proposer_s:.2f} s"),
            ("  inside propose", f"{propose_s:.2f} s"),
            ("  inside predict (consistency checks)", f"{predict_s:.2f} s"),
            ("planner overhead (the rest)", f"{overhead_s:.3f} s"),
            ("  of which the verifier's own checks", f"{check_s:.3f} s"),
            ("overhead / proposer time", f"{100 * overhead_s / proposer_s:.2f} %"),
            ("sandbox start-up per program", f"{statistics.median(startup):.3f} s"),
            ("tasks per minute", f"{60 * len(tasks) / wall:.1f}")]
    for name in args.proposers.split(","):
        mine = [a["seconds"] for a in attempts if a["proposer"] == name]
        if mine:
            rows.append((f"{name}: seconds per attempt (median)", f"{statistics.median(mine):.3f} s"))
    width = max(len(k) for k, _ in rows)
    print("| " + "what".ljust(width) + " | value      |")
    print("|-" + "-" * width + "-|------------|")
    for key, value in rows:
        print(f"| {key.ljust(width)} | {value:>10} |")


if __name__ == "__main__":
    main()
