"""Torch threads per process: 1 against 2 (or any counts) on TRM training and on the planner demo.

Each setting runs the real command (`hybrid-arc ... --threads N`) in its own process, in turns
(1, 2, then 2, 1, ...), so that a machine whose speed drifts, or that other jobs share, slows all
settings alike; each cell is the median over the rounds and the ratio compares within this run.

- `trm train` on experiments/configs/trm_tiny.yaml with max_steps=60 and a log line every 10 steps:
  training steps per second between the log lines of step 10 and step 50, timed as each line
  appears (no start-up, data loading or evaluation inside), and the command's wall seconds.
- `plan` on the four-task ARC-AGI-1 evaluation demo (default proposers): the command's wall seconds
  and the tasks' own seconds (summary.json "seconds": no start-up).

A warm-up run of each command first (untimed) builds the dataset cache and warms the file cache.

    .venv/bin/python experiments/bench_threads.py [--threads 1,2] [--rounds 3] [--skip-plan] [--skip-train]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hybrid_pipeline.arc.wording import plural
from hybrid_pipeline.threads import ENV_VARS, cores

ROOT = Path(__file__).resolve().parents[1]
DEMO = "00576224,66e6c45b,68b67ca3,e633a9e5"
CLI = [sys.executable, "-m", "hybrid_pipeline.cli"]
FIRST_STEP, LAST_STEP = 10, 50  # the timed stretch of training: log lines of these steps


def child_env() -> dict[str, str]:
    """This environment without the thread variables, so that `--threads` alone decides."""
    return {k: v for k, v in os.environ.items() if k not in ENV_VARS}


def train(threads: int, work: Path, steps: int) -> dict[str, float]:
    """One `trm train` run: steps/s over steps FIRST_STEP..LAST_STEP (when logged) and wall seconds."""
    out = Path(tempfile.mkdtemp(prefix=f"trm-{threads}-", dir=work))  # empty: no earlier run's log to misread
    log = out / "train_log.jsonl"
    command = [*CLI, "trm", "train", "--config", "experiments/configs/trm_tiny.yaml", "--threads", str(threads),
               "--quiet", f"max_steps={steps}", "log_every=10", f"out_dir={out}"]
    seen: dict[int, float] = {}  # step -> when its log line appeared
    errors = out / "stderr.txt"  # a file, not a pipe: a pipe nobody reads until the end could fill and block
    started = time.perf_counter()
    with errors.open("w") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL, stderr=stderr)
        while process.poll() is None:
            _note_lines(log, seen)
            time.sleep(0.02)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"error: trm train --threads {threads} failed ({process.returncode}): "
                         f"{errors.read_text()[-2000:]}")
    result = {"wall_s": wall}
    if FIRST_STEP in seen and LAST_STEP in seen:
        result["steps_per_s"] = (LAST_STEP - FIRST_STEP) / (seen[LAST_STEP] - seen[FIRST_STEP])
    return result


def _note_lines(log: Path, seen: dict[int, float]) -> None:
    try:
        text = log.read_text()
    except FileNotFoundError:
        return
    now = time.perf_counter()
    for line in text.splitlines():
        if line.endswith("}"):  # a whole line (appends are one write each)
            seen.setdefault(json.loads(line)["step"], now)


def plan(threads: int, work: Path) -> dict[str, float]:
    """One `plan` run on the demo: wall seconds and the tasks' own seconds."""
    out = Path(tempfile.mkdtemp(prefix=f"plan-{threads}-", dir=work))
    command = [*CLI, "plan", "--data", "arc-agi-1:evaluation", "--tasks", DEMO, "--threads", str(threads),
               "--out", str(out), "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=child_env(), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"error: plan --threads {threads} failed ({done.returncode}): {done.stderr[-2000:]}")
    return {"wall_s": wall, "task_s": json.loads((out / "summary.json").read_text())["seconds"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts, the first is the base")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each setting, in turns")
    parser.add_argument("--steps", type=int, default=60, help="trm train max_steps")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-plan", action="store_true")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.threads.split(",")]
    workloads = [(name, run) for name, run, skip in (
        ("trm train", lambda t, w: train(t, w, args.steps), args.skip_train),
        ("plan demo", plan, args.skip_plan)) if not skip]
    load_before = os.getloadavg()
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        work = Path(tmp)
        for name, run in workloads:
            run(min(counts), work)  # warm-up (dataset cache, file cache) on the fewest threads: quickest when busy
            for r in range(args.rounds):
                for threads in counts if r % 2 == 0 else counts[::-1]:
                    results.setdefault((name, threads), []).append(run(threads, work))
                    print(f"  {name}, {plural(threads, 'thread')}, round {r + 1}: "
                          + ", ".join(f"{k} {v:.2f}" for k, v in results[(name, threads)][-1].items()),
                          file=sys.stderr)

    base = counts[0]
    header = ["workload", "measure", *(plural(t, "thread") for t in counts),
              *(f"ratio {t}/{base}" for t in counts[1:])]
    rows = []
    for name, _ in workloads:
        for measure in results[(name, base)][0]:
            medians = [statistics.median(x[measure] for x in results[(name, t)]) for t in counts]
            rows.append([name, measure, *(f"{m:.2f}" for m in medians), *(f"{m / medians[0]:.2f}" for m in medians[1:])])
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"torch threads per process, median of {args.rounds} runs in turns; {platform.machine()}, "
          f"{cores()} cores, load average {load_before[0]:.1f} before / {os.getloadavg()[0]:.1f} after")
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    print(f"steps_per_s: higher is faster; wall_s, task_s: lower is faster; ratio N/{base}: the value at N threads "
          f"over the value at {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
