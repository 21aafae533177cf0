"""Benchmark of the program-search proposer, through the same code path as `hybrid-arc plan`.

    python experiments/bench_search.py [--splits arc-agi-1:training,arc-agi-1:evaluation,arc-agi-2:evaluation]
        [--budget 300] [--view-budget 100] [--workers 2] [--limit N] [--compare-feedback] [--json runs/bench_search.json]

For each split it runs `build_planner(PlanSetup(proposers=("search",)))` + `run_plan` (what
`hybrid-arc plan --proposers search` runs) and prints one table row:
- pass@1 / pass@2 / pass@3 per task (the headline: a task scores the share of its test inputs
  solved) and per test output, from the planner's own answer ranking;
- fit: tasks where a program reproduces every demonstration; wrong fit: of those, the share whose
  best fitting program is wrong on a test input (the classic failure: the simplest explanation of
  the demonstrations is not the rule);
- found: the share of test outputs whose right answer was among the attempts at all, and the mean
  rank (1-based) where it was;
- CPU seconds in all (this process and its workers), median and max seconds per task, and states
  expanded per second of search.
Errors and capped tasks (a search stopped by its wall-clock or state cap) count as unsolved.
`--compare-feedback` runs each split a second time with retries that ignore the verifier's problems,
at the same budget, and says how many test inputs' attempts the feedback changed.

`--peer DIR` also runs a local build of the 2020 Kaggle-winning C++ DSL search (the `run` binary
of github.com/top-quarks/ARC-solution, built with its `make`; never part of this repository) on the
same tasks, one process per test input in `--workers` parallel, at `--peer-depth` (its default 2),
and prints its row beside ours: its top three answers by its own score give pass@1/2/3.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

SPLITS = ("arc-agi-1:training", "arc-agi-1:evaluation", "arc-agi-2:evaluation")


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def run_split(split: str, tasks, args: argparse.Namespace, *, feedback: bool) -> dict:
    from planner.build import PlanSetup, build_planner
    from planner.run import run_plan

    setup = PlanSetup(proposers=("search",), attempts=args.attempts, search_budget=args.budget,
                      search_depth=args.depth, search_seconds=args.seconds, search_feedback=feedback,
                      search_order=args.order, search_view_budget=args.view_budget)
    planner, meta = build_planner(setup)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out) / f"{split.replace(':', '-')}{'' if feedback else '-no-feedback'}" if args.out else scratch
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        run = run_plan(planner, tasks, out, meta=meta, progress=not args.quiet, workers=args.workers)
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    return measure(split, tasks, run.records, cpu=cpu, wall=wall)


def measure(split: str, tasks, records: list[dict], *, cpu: float, wall: float) -> dict:
    from hybrid_pipeline.arc.scoring import grids_equal
    from planner.planner import choose_answers
    from planner.trace import TestInputResult

    by_id = {t.id: t for t in tasks}
    solved_tasks = []
    fit_tasks, wrong_fit, found, ranks, expanded, search_s, capped, errors = 0, 0, 0, [], 0, 0.0, 0, 0
    attempts_by_input = {}
    for record in records:
        task = by_id[record["task_id"]]
        unusable = record["status"] == "error" or bool(record.get("capped"))
        capped += bool(record.get("capped"))
        errors += record["status"] == "error"
        solved = {k: [] for k in (1, 2, 3)}
        task_fits, task_wrong = False, False
        for i, entry in enumerate(record["test"]):
            expected = task.test[i].output
            result = TestInputResult.from_dict(entry)
            attempts_by_input[(task.id, i)] = [a.grid.tolist() if a.grid is not None else None for a in result.attempts]
            ranking = choose_answers(result.attempts, k=len(result.attempts))
            for k in (1, 2, 3):
                solved[k].append(not unusable and any(grids_equal(g, expected) for g in ranking[:k]))
            distinct = [a for a in result.attempts if a.grid is not None and a.duplicate_of is None]
            hit = next((r for r, a in enumerate(distinct) if grids_equal(a.grid, expected)), None)
            if hit is not None:
                found += 1
                ranks.append(hit + 1)
            fitting = [a for a in distinct if a.fits_train]
            if fitting:
                task_fits = True
                task_wrong |= not grids_equal(fitting[0].grid, expected)
        first = (record["test"][0]["attempts"] or [{}])[0].get("info") if record["test"] else None
        if first:  # one search serves every test input of the task
            expanded += first.get("expanded", 0)
            search_s += first.get("search_seconds", 0.0)
        fit_tasks += task_fits
        wrong_fit += task_fits and task_wrong
        solved_tasks.append(solved)
    seconds = [r["seconds"] for r in records]
    return {
        "split": split, "tasks": len(records), **pass_at(solved_tasks),
        "fit_tasks": fit_tasks, "wrong_fit_tasks": wrong_fit,
        "found_outputs": found, "mean_found_rank": statistics.fmean(ranks) if ranks else None,
        "cpu_seconds": round(cpu, 1), "wall_seconds": round(wall, 1),
        "median_task_seconds": statistics.median(seconds), "max_task_seconds": max(seconds),
        "states_per_second": expanded / search_s if search_s else 0.0,
        "capped_tasks": capped, "error_tasks": errors, "attempts": attempts_by_input,
    }


def pass_at(solved_tasks: list[dict[int, list[bool]]]) -> dict:
    """pass@1/2/3 per task and per output from, per task, k -> whether each test input was solved
    within the first k answers."""
    per_task = {k: [sum(s[k]) / len(s[k]) for s in solved_tasks] for k in (1, 2, 3)}
    per_output = {k: [ok for s in solved_tasks for ok in s[k]] for k in (1, 2, 3)}
    n_out = len(per_output[1])
    return {"test_outputs": n_out, **{f"pass@{k}_task": statistics.fmean(per_task[k]) for k in (1, 2, 3)},
            **{f"pass@{k}_output": sum(per_output[k]) / n_out for k in (1, 2, 3)},
            **{f"solved@{k}_outputs": sum(per_output[k]) for k in (1, 2, 3)}}


def run_peer(peer_dir: str, split: str, tasks, args: argparse.Namespace) -> dict:
    """The peer's answers for every test input of `tasks`, scored like ours."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    binary = Path(peer_dir).resolve() / "run"
    if not binary.is_file():
        raise SystemExit(f"error: --peer {peer_dir}: no built `run` binary there (run `make` in it first)")
    with tempfile.TemporaryDirectory() as work:
        # The peer reads ./dataset/evaluation/<id>.json (test outputs included, for its own log) and
        # writes output/answer_<sample>_<depth>.csv, its sample order being the directory's.
        data = Path(work) / "dataset" / "evaluation"
        data.mkdir(parents=True)
        (Path(work) / "output").mkdir()
        for task in tasks:
            (data / f"{task.id}.json").write_text(json.dumps(task.to_json()))
        n_samples = sum(len(t.test) for t in tasks)

        def one(i: int) -> float:
            started = time.perf_counter()
            subprocess.run([str(binary), str(i), str(args.peer_depth)], cwd=work, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=600)
            return time.perf_counter() - started

        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            sample_seconds = list(pool.map(one, range(n_samples)))
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
        answers, seconds = {}, {}
        for i in range(n_samples):
            path = Path(work) / "output" / f"answer_{i}_{args.peer_depth}.csv"
            if not path.exists():
                continue
            head, *lines = path.read_text().split("\n")
            task_id, test_index = head.rsplit("_", 1)
            ranked = sorted((ln.split() for ln in lines if ln.strip()), key=lambda p: -float(p[1]))
            grids = []
            for image, _ in ranked:
                if image not in grids:
                    grids.append(image)
            answers[(task_id, int(test_index))] = grids[:3]
            seconds[task_id] = seconds.get(task_id, 0.0) + sample_seconds[i]

    def text(grid) -> str:
        return "|" + "|".join("".join(map(str, row)) for row in grid.tolist()) + "|"

    solved_tasks = [{k: [text(ex.output) in answers.get((task.id, i), [])[:k] for i, ex in enumerate(task.test)]
                     for k in (1, 2, 3)} for task in tasks]
    scores = pass_at(solved_tasks)
    n_out = scores["test_outputs"]
    times = [seconds.get(t.id, 0.0) for t in tasks]
    return {"label": f"{split} (peer, depth {args.peer_depth})", "split": split, "tasks": len(tasks),
            **scores, "fit_tasks": None, "wrong_fit_tasks": None, "found_outputs": scores["solved@3_outputs"],
            "cpu_seconds": round(cpu, 1), "wall_seconds": round(wall, 1),
            "median_task_seconds": statistics.median(times), "max_task_seconds": max(times),
            "states_per_second": None, "capped_tasks": 0, "error_tasks": n_out - len(answers), "attempts": {}}


def table(rows: list[dict]) -> str:
    head = ("split", "tasks", "pass@1", "pass@2", "pass@3", "pass@2 out", "fit", "wrong fit",
            "found", "CPU s", "med s", "max s", "states/s", "capped")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = (r["label"], str(r["tasks"]),
                 *(f"{100 * r[f'pass@{k}_task']:.1f}%" for k in (1, 2, 3)),
                 f"{100 * r['pass@2_output']:.1f}% ({r['solved@2_outputs']}/{r['test_outputs']})",
                 "-" if r["fit_tasks"] is None else str(r["fit_tasks"]),
                 f"{100 * r['wrong_fit_tasks'] / r['fit_tasks']:.0f}%" if r["fit_tasks"] else "-",
                 f"{100 * r['found_outputs'] / r['test_outputs']:.1f}%",
                 f"{r['cpu_seconds']:.0f}", f"{r['median_task_seconds']:.2f}", f"{r['max_task_seconds']:.1f}",
                 "-" if r["states_per_second"] is None else f"{r['states_per_second']:.0f}",
                 str(r["capped_tasks"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    from planner.build import PlanSetup

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--budget", type=int, default=PlanSetup.search_budget,
                        help="states expanded per task (plan's default)")
    parser.add_argument("--depth", type=int, default=PlanSetup.search_depth)
    parser.add_argument("--order", default=PlanSetup.search_order, choices=("breadth", "closest"),
                        help="which states of a level the search expands first (plan's --search-order)")
    parser.add_argument("--view-budget", type=int, default=PlanSetup.search_view_budget,
                        help="states for the colours-by-rank view when nothing fits (plan's --search-view-budget)")
    parser.add_argument("--seconds", type=float, default=PlanSetup.search_seconds, help="wall-clock cap per task search")
    parser.add_argument("--attempts", type=int, default=4, help="attempts per test input (plan's default)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit", type=int, help="first N tasks of each split")
    parser.add_argument("--compare-feedback", action="store_true", help="also run without feedback")
    parser.add_argument("--json", default="runs/bench_search.json", help="where to write every figure")
    parser.add_argument("--peer", metavar="DIR", help="a local build of the 2020 C++ DSL search, run beside ours")
    parser.add_argument("--peer-depth", type=int, default=2)
    parser.add_argument("--out", help="keep each split's run (results.jsonl, report.html, ...) under this folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()

    from hybrid_pipeline.arc.tasks import load_tasks

    rows = []
    for split in args.splits.split(","):
        tasks = load_tasks(split, limit=args.limit).raise_if_problems().tasks
        row = run_split(split, tasks, args, feedback=True)
        row["label"] = split
        rows.append(row)
        if args.peer:
            rows.append(run_peer(args.peer, split, tasks, args))
        if args.compare_feedback:
            plain = run_split(split, tasks, args, feedback=False)
            plain["label"] = split + " (no feedback)"
            changed = sum(plain["attempts"].get(key) != value for key, value in row["attempts"].items())
            row["feedback_changed_inputs"] = plain["feedback_changed_inputs"] = changed
            rows.append(plain)
    print(f"program search, budget {args.budget} states (+{args.view_budget} in the colour view), depth {args.depth}, "
          f"{args.attempts} attempts, "
          f"{args.workers} workers; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    print(table(rows))
    for row in rows:
        if "feedback_changed_inputs" in row and "(no feedback)" not in row["label"]:
            print(f"{row['label']}: feedback changed the attempts of {row['feedback_changed_inputs']} of "
                  f"{row['test_outputs']} test inputs")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        from hybrid_pipeline.arc.files import atomic_write_json

        atomic_write_json(path, {"args": vars(args), "rows": [{k: v for k, v in r.items() if k != "attempts"}
                                                              for r in rows]}, indent=2)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
