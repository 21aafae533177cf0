"""The TRM on tasks it never trained on: blank row, mean row, test-time training, and the paper's route.

For each family of experiments/unseen_tasks.py (a rule whose per-task parameter only the
demonstrations reveal), a TRM trains on the family's training tasks, one puzzle-embedding row per
task and view (the paper's recipe, at toy size), and answers held-out tasks whose ids it never
trained on. Methods, side by side, each with the CPU seconds (`time.process_time`) it spent:

- `blank`: the blank row 0, no adaptation (what `trm eval` does for an unseen task);
- `mean`: new rows at the mean of the trained rows, no training (test-time training for 0 steps);
- `nearest`: per view, the trained row (of `--ttt-candidates` drawn per task) under which the network
  fits the task's demonstrations best, no training: retrieval of a known task's row;
- `ttt`: test-time training (`hybrid_pipeline.trm.ttt`): the mean rows trained on the task's
  demonstrations for `--ttt-steps` steps, then voted over the views;
- `ttt_nearest`: the same, starting from the `nearest` rows;
- `ttt_net`: the same, with (a copy of) the network fine-tuned too, at `--ttt-network-lr`;
- `paper`: the held-out tasks' demonstrations join the training data (as `trm train` does with its
  evaluation data: demonstrations train their rows, test outputs never), so their rows are trained;
  a second training run per family;
- further methods plug in by `--method NAME=MODULE:FUNCTION` (a `unseen_tasks.Method`: training
  tasks, held-out tasks without test outputs, a `MethodBudget` -> a `MethodResult`), e.g. the hybrid.

`blank`, `mean`, `nearest`, `ttt`, `ttt_nearest` and `ttt_net` share one training run per family (each row reports its CPU seconds).
Every method answers once per task (pass@1: the top-voted grid); the table gives exact accuracy on
the held-out tasks with its standard error, and each family's chance level (`unseen_tasks.chance`).

    python experiments/bench_unseen.py --out runs/bench_unseen            # the whole benchmark
    python experiments/bench_unseen.py --quick --out runs/bench_unseen_quick   # a few-minute smoke test

Families run in `--jobs` processes (one torch thread each). Results go to OUT/results.json and the
table to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # experiments/ is not a package
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from toy_tasks import TOY_RECIPE  # noqa: E402
from unseen_tasks import (CANVAS, FAMILIES, N_HELDOUT_TASKS, N_TRAIN_TASKS, Method, MethodBudget,  # noqa: E402
                          MethodResult, chance, family_tasks, score, write_challenges)

from hybrid_pipeline.arc.files import atomic_write_json  # noqa: E402
from hybrid_pipeline.arc.tasks import Task  # noqa: E402

# The TRM of every family: the toy recipe (experiments/toy_tasks.py) on the unseen tasks' canvas,
# with the values below changed for thousands of tasks that each have their own rows.
RECIPE = {
    **TOY_RECIPE,
    "canvas": CANVAS,
    "num_augmentations": 1,  # rows per task in training; test-time training chooses its own views
    "puzzle_emb_lr": 3e-2,  # a row is in a batch once per ~(tasks x pairs / batch) steps, not every step
    "ema_decay": 0.999,  # the paper's; the exported weights are the average
    "checkpoint_every": 1_000_000,
    "log_every": 100,
}
TRAIN_STEPS, TTT_STEPS = 14_000, 30
DEFAULT_METHODS = ("blank", "mean", "nearest", "ttt", "paper")  # the whole benchmark: under 60 minutes on 2 cores
QUICK = {"train_tasks": 200, "heldout_tasks": 20, "train_steps": 300, "ttt_steps": 10}


@dataclass(frozen=True)
class TTTSettings:
    lr: float = 3e-2
    views: int = 2
    network_lr: float = 1e-3  # ttt_net's; ttt trains the rows only
    batch_size: int | None = None
    candidates: int = 128  # trained rows tried per task by nearest and ttt_nearest (translate has 24 shifts)


# --------------------------------------------------------------------------------------------------
# training (one run per family and data; blank, mean and ttt share theirs)

_TRAINED: dict[tuple, tuple[Path, float]] = {}
REUSE = False  # --reuse: take the finished training runs in --out (and their recorded CPU seconds)


def train_family_trm(train: list[Task], heldout: list[Task] | None, budget: MethodBudget, name: str,
                     overrides: tuple[str, ...] = ()) -> tuple[Path, float]:
    """Train a TRM on `train` (every pair) and, when given, `heldout`'s demonstrations (their rows);
    returns (the export dir, CPU seconds). Cached per process for the same tasks and budget."""
    key = (name, tuple(t.id for t in train), tuple(t.id for t in heldout or ()), budget.train_steps, budget.seed,
           budget.work_dir, overrides)
    if key in _TRAINED:
        return _TRAINED[key]
    root = Path(budget.work_dir) / name
    digest = hashlib.sha256(repr(key[:-2] + key[-1:]).encode()).hexdigest()  # tasks, steps, seed, overrides
    recorded = root / "train_cpu.json"
    if REUSE and recorded.is_file() and json.loads(recorded.read_text())["key"] == digest:
        final, _ = _train(train, heldout, budget, root, overrides, resume=True)  # refuses other settings
        _TRAINED[key] = (final, json.loads(recorded.read_text())["cpu_s"])
        return _TRAINED[key]
    _TRAINED[key] = _train(train, heldout, budget, root, overrides, resume=False)
    atomic_write_json(recorded, {"cpu_s": _TRAINED[key][1], "key": digest})
    return _TRAINED[key]


def _train(train: list[Task], heldout: list[Task] | None, budget: MethodBudget, root: Path,
           overrides: tuple[str, ...], *, resume: bool) -> tuple[Path, float]:
    from hybrid_pipeline.config import load_config
    from hybrid_pipeline.trm.train import TRMTrainConfig, train_trm

    started = time.process_time()
    train_file = write_challenges(train, root / "train_challenges.json")
    recipe = {**RECIPE, "data": str(train_file), "eval_data": None, "max_steps": budget.train_steps,
              "seed": budget.seed, "out_dir": str(root / "trm"), "cache_dir": None}
    if heldout:
        blind = [t.without_solutions() for t in heldout]  # their test outputs never reach the trainer
        recipe["eval_data"] = str(write_challenges(blind, root / "heldout_challenges.json", with_solutions=False))
        # One or two held-out test inputs per family are small random grids that also occur in some
        # training task (under that task's own rule); the trainer's leakage check would refuse the run.
        # It warns and keeps them instead: at most 1% of the held-out tasks.
        recipe["leakage"] = "allow"
    config = load_config(TRMTrainConfig, None, [f"{k}={json.dumps(v)}" for k, v in recipe.items()] + list(overrides))
    # a resume of a finished run with the same settings loads it; with other settings it is refused
    result = train_trm(config, progress=False, overwrite=not resume, resume=resume)
    return Path(result.final_dir), time.process_time() - started


def _answers(box, tasks: list[Task]) -> dict[str, np.ndarray | None]:
    """The top-voted grid of each task's (one) test input, None when nothing was decodable."""
    answers = {}
    for task in tasks:
        ranked = box.ranked(task.id, 0)
        answers[task.id] = ranked[0].grid if ranked else None
    return answers


ADAPTATIONS = {  # method -> (where the rows start, whether they train, whether the network trains)
    "mean": ("mean", False, False), "nearest": ("nearest", False, False), "ttt": ("mean", True, False),
    "ttt_nearest": ("nearest", True, False), "ttt_net": ("mean", True, True)}


def _trm_method(name: str, *, adaptation: str, ttt: TTTSettings = TTTSettings(),
                overrides: tuple[str, ...] = ()) -> Method:
    """A method that trains the family's TRM, then answers each held-out task by `adaptation`:
    "blank" (row 0), "trained" (the paper's route: the rows trained with the network), or one of
    `ADAPTATIONS` (new rows per task and view, `hybrid_pipeline.trm.ttt.adapt`)."""

    def run(train: list[Task], heldout: list[Task], budget: MethodBudget) -> MethodResult:
        from hybrid_pipeline.trm.checkpoint import load_trm
        from hybrid_pipeline.trm.evaluate import vote_predictions
        from hybrid_pipeline.trm.ttt import TTTConfig, adapt

        joint = adaptation == "trained"
        final, train_cpu = train_family_trm(train, heldout if joint else None, budget,
                                            "paper" if joint else "trm", overrides)
        model, plan = load_trm(final)
        started = time.process_time()
        if adaptation in ADAPTATIONS:
            init, tuned, network = ADAPTATIONS[adaptation]
            config = TTTConfig(steps=budget.test_steps if tuned else 0, lr=ttt.lr, views=ttt.views,
                               network_lr=ttt.network_lr if network else None, batch_size=ttt.batch_size,
                               seed=budget.seed, init=init, candidates=ttt.candidates)
            answers = {}
            for task in heldout:
                adapted = adapt(model, plan, task, config, canvas=CANVAS)
                answers |= _answers(vote_predictions(adapted.model, [task], adapted.plan, canvas=CANVAS), [task])
        else:  # blank: the plan has no rows for the task; trained: it has
            if joint:
                assert all(plan.for_task(t.id) for t in heldout)
            answers = _answers(vote_predictions(model, heldout, plan, canvas=CANVAS), heldout)
        test_cpu = (time.process_time() - started) / max(len(heldout), 1)
        nearest = f"{ttt.views} views at the best fit of {ttt.candidates} trained rows"
        notes = {"blank": "blank row 0, identity view", "mean": f"{ttt.views} views at the mean row",
                 "nearest": nearest,
                 "ttt": f"{budget.test_steps} steps, lr {ttt.lr}, {ttt.views} views from the mean row",
                 "ttt_nearest": f"{budget.test_steps} steps, lr {ttt.lr}, {nearest}",
                 "ttt_net": f"{budget.test_steps} steps, lr {ttt.lr}, {ttt.views} views, network lr {ttt.network_lr}",
                 "trained": "held-out demonstrations in training (2nd run)"}[adaptation]
        return MethodResult(name, {}, train_cpu, test_cpu, notes=notes, predictions=answers)

    return run


def methods(ttt: TTTSettings, overrides: tuple[str, ...] = ()) -> dict[str, Method]:
    """The benchmark's registry: name -> method. `--method` adds to it (e.g. the hybrid)."""
    return {name: _trm_method(name, adaptation="trained" if name == "paper" else name, ttt=ttt, overrides=overrides)
            for name in REGISTRY}


REGISTRY = ("blank", "mean", "nearest", "ttt", "ttt_nearest", "ttt_net", "paper")


def load_method(spec: str) -> tuple[str, Method]:
    """NAME=MODULE:FUNCTION -> (NAME, the function). MODULE is imported with experiments/ on the path."""
    name, _, target = spec.partition("=")
    module_name, _, function = target.partition(":")
    if not (name and module_name and function):
        raise ValueError(f"--method {spec!r}: expected NAME=MODULE:FUNCTION")
    return name, getattr(importlib.import_module(module_name), function)


# --------------------------------------------------------------------------------------------------
# one family, scoring, the table


def run_family(family: str, args: dict[str, Any]) -> dict[str, Any]:
    """Every selected method on one family; returns a JSON-able record."""
    import torch

    global REUSE
    REUSE = args["reuse"]
    torch.set_num_threads(1)
    cpu_before = time.process_time()
    train = family_tasks(family, "train", args["train_tasks"], seed=args["seed"])
    heldout = family_tasks(family, "heldout", args["heldout_tasks"], seed=args["seed"])
    blind = [t.without_solutions() for t in heldout]
    budget = MethodBudget(train_steps=args["train_steps"], test_steps=args["ttt_steps"], seed=args["seed"],
                          quick=args["quick"], work_dir=str(Path(args["out"]) / family))
    registry = methods(TTTSettings(**args["ttt"]), tuple(args["overrides"]))
    registry.update(load_method(spec) for spec in args["plugins"])
    record = {"family": family, "chance": float(np.mean([chance(family, t) for t in heldout])),
              "heldout_tasks": len(heldout), "train_tasks": len(train), "methods": {}}
    for name in args["methods"]:
        started = time.perf_counter()
        result = score(registry[name](train, blind, budget), heldout)
        record["methods"][name] = {"accuracy": result.accuracy, "standard_error": result.standard_error,
                                   "train_cpu_s": result.train_cpu_s, "test_cpu_s_per_task": result.test_cpu_s_per_task,
                                   "notes": result.notes, "wall_s": time.perf_counter() - started,
                                   "correct": result.correct}
        print(f"{family} {name}: {result.accuracy:.3f} ({time.perf_counter() - started:.0f} s)", file=sys.stderr,
              flush=True)
    record["process_cpu_s"] = time.process_time() - cpu_before  # every method of the family, tasks drawn included
    return record


def table(records: list[dict[str, Any]]) -> str:
    lines = ["| family | chance | method | exact (pass@1) ± s.e. | train CPU s | test CPU s / task | notes |",
             "|---|---|---|---|---|---|---|"]
    for record in records:
        for name, m in record["methods"].items():
            lines.append(f"| {record['family']} | {record['chance']:.2g} | {name} | {m['accuracy']:.3f} ± "
                         f"{m['standard_error']:.3f} | {m['train_cpu_s']:.0f} | {m['test_cpu_s_per_task']:.2f} | "
                         f"{m['notes']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated from {', '.join(FAMILIES)}")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated from the registry ({', '.join(REGISTRY)}) and --method names")
    parser.add_argument("--method", action="append", default=[], metavar="NAME=MODULE:FUNCTION",
                        help="add a method (an unseen_tasks.Method), e.g. the hybrid; name it in --methods too")
    parser.add_argument("--train-tasks", type=int, default=N_TRAIN_TASKS)
    parser.add_argument("--heldout-tasks", type=int, default=N_HELDOUT_TASKS)
    parser.add_argument("--train-steps", type=int, default=TRAIN_STEPS, help="TRM training steps per run")
    parser.add_argument("--ttt-steps", type=int, default=TTT_STEPS, help="test-time training steps per task")
    parser.add_argument("--ttt-lr", type=float, default=TTTSettings.lr)
    parser.add_argument("--ttt-views", type=int, default=TTTSettings.views)
    parser.add_argument("--ttt-network-lr", type=float, default=TTTSettings.network_lr,
                        help="ttt_net's lr for (a copy of) the network")
    parser.add_argument("--ttt-candidates", type=int, default=TTTSettings.candidates,
                        help="trained rows nearest and ttt_nearest try per task")
    parser.add_argument("--quick", action="store_true", help=f"a smoke test: {QUICK}, unless given explicitly")
    parser.add_argument("--jobs", type=int, default=2, help="families run in this many processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true",
                        help="take the training runs an earlier call with the same training settings finished in "
                             "--out (their CPU seconds as recorded then): compare test-time settings without retraining")
    parser.add_argument("--out", default="runs/bench_unseen", help="checkpoints and results.json go here")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="TRMTrainConfig overrides on the recipe")
    args = parser.parse_args(argv)
    given = {a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:])}
    if args.quick:
        for key, value in QUICK.items():
            if "--" + key.replace("_", "-") not in given:
                setattr(args, key, value)
    families = [f for f in args.families.split(",") if f]
    if unknown := [f for f in families if f not in FAMILIES]:
        parser.error(f"unknown families {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    plugins = dict(spec.partition("=")[::2] for spec in args.method)
    chosen = [m for m in args.methods.split(",") if m]
    if unknown := [m for m in chosen if m not in REGISTRY and m not in plugins]:
        parser.error(f"unknown methods {', '.join(unknown)}: name a registry method or add it with --method")
    settings = {"reuse": args.reuse, "train_tasks": args.train_tasks, "heldout_tasks": args.heldout_tasks, "train_steps": args.train_steps,
                "ttt_steps": args.ttt_steps, "seed": args.seed, "quick": args.quick, "out": args.out,
                "methods": chosen, "plugins": args.method, "overrides": args.overrides,
                "ttt": asdict(TTTSettings(args.ttt_lr, args.ttt_views, args.ttt_network_lr,
                                            candidates=args.ttt_candidates))}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter()
    done: dict[str, dict[str, Any]] = {}

    def keep(record: dict[str, Any]) -> None:  # results.json grows as families finish
        done[record["family"]] = record
        atomic_write_json(out / "results.json", {"settings": settings, "families": list(done.values())}, indent=1)

    if args.jobs > 1 and len(families) > 1:
        import multiprocessing
        from functools import partial

        with multiprocessing.get_context("spawn").Pool(min(args.jobs, len(families))) as pool:
            for record in pool.imap_unordered(partial(run_family, args=settings), families):
                keep(record)
    else:
        for family in families:
            keep(run_family(family, settings))
    records = [done[f] for f in families]
    wall = time.perf_counter() - wall
    cpu_all = sum(r["process_cpu_s"] for r in records)
    print(table(records))
    print(f"\n{len(families)} families x {len(chosen)} methods: {wall:.0f} s wall, {cpu_all:.0f} CPU s in all "
          f"({args.jobs if len(families) > 1 else 1} processes, 1 torch thread each), {platform.machine()} "
          f"{os.cpu_count()} CPUs; {args.train_tasks} training and {args.heldout_tasks} held-out tasks per family, "
          f"{args.train_steps} TRM steps per training run, {args.ttt_steps} test-time steps per task")
    atomic_write_json(out / "results.json", {"settings": settings, "wall_s": wall, "cpu_s": cpu_all,
                                             "families": records}, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
