"""Toy ARC-like task families, and a check that the TRM learns them on a CPU in minutes.

Why: a TRM that cannot learn "flip the grid" from a thousand examples has a bug, and real ARC
tasks are far too hard to tell a bug from a hard task in a short CPU run. Each family is one rule
(flip, rotate, recolour, gravity, ...) applied to random small grids; it becomes ONE task whose
many demonstration pairs train the TRM (its puzzle embedding says which rule) and whose test pairs
are unseen instances of the same rule: exact accuracy on them says whether the rule was learnt.

    python experiments/toy_tasks.py --minutes 10 --check 0.9

writes the tasks under `--out`/tasks, trains a small TRM on a 10x10 canvas for the recipe's 9,000
steps or until the wall-clock limit, whichever comes first, and prints per-family exact accuracy on
the test pairs: pass@1, after each supervision step, and at the step where the Q head first says
halt. With `--check X` it exits 1 when the mean pass@1 of the simple families is below X.

    python experiments/toy_tasks.py --rescore --out DIR --n-test 1000 [--families ... --seed ... --n-train ...]

scores the model a finished run left in DIR again, without training, on more unseen instances of
the same tasks: at the default 50 test pairs a family's accuracy of 0.6 has a standard error of 0.07.

Measured on the 2-core CPU this project is developed on (docs/trm.md has the table): in its 9,000
steps the recipe below learns all five simple families, mean pass@1 0.948-0.996 over seven seeds;
one run in ten (a torch.compile run of seed 0, 0.836) fell short, still learning when it ended.
Cut at 10 minutes there (8,160 and 8,790 steps, the machine's speed varies), it scored 0.944 and 0.964.
The paper's shape (3 H cycles, 6 supervision steps) learns only colour_map in the same time.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from hybrid_pipeline.arc.files import atomic_write_json
from hybrid_pipeline.arc.tasks import Example, Task

Pair = tuple[np.ndarray, np.ndarray]
PairGenerator = Callable[[np.random.Generator], Pair]

MIN_SIDE, MAX_SIDE = 3, 10  # grid sides; MAX_SIDE is also the TRM canvas
N_TRAIN, N_TEST = 30_000, 50  # pairs per family task: demonstrations, unseen test instances


# --------------------------------------------------------------------------------------------------
# rules: pure functions grid -> grid


def map_colours(grid: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """Recolour every cell: colour c becomes mapping[c]."""
    return mapping[grid].astype(np.uint8)


def gravity(grid: np.ndarray) -> np.ndarray:
    """Non-zero cells fall to the bottom of their column, keeping their top-to-bottom order."""
    out = np.zeros_like(grid)
    for c in range(grid.shape[1]):
        column = grid[:, c][grid[:, c] != 0]
        out[grid.shape[0] - len(column):, c] = column
    return out


def mirror_left_half(grid: np.ndarray) -> np.ndarray:
    """Copy the left half onto the right half as its mirror image (the output is left-right symmetric)."""
    half = grid.shape[1] // 2
    out = grid.copy()
    out[:, grid.shape[1] - half:] = np.fliplr(grid[:, :half])
    return out


def flood(open_cells: np.ndarray, starts: Sequence[tuple[int, int]]) -> np.ndarray:
    """The cells of the boolean mask `open_cells` that a 4-connected path through open cells joins to
    one of `starts` (a start that is not open reaches nothing)."""
    h, w = open_cells.shape
    reached = np.zeros((h, w), dtype=bool)
    stack = list(starts)
    while stack:
        r, c = stack.pop()
        if 0 <= r < h and 0 <= c < w and open_cells[r, c] and not reached[r, c]:
            reached[r, c] = True
            stack += [(r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)]
    return reached


def fill_enclosed(grid: np.ndarray, colour: int) -> np.ndarray:
    """Background cells that no 4-connected path of background cells joins to the border get `colour`."""
    h, w = grid.shape
    border = [(r, c) for r in range(h) for c in range(w) if r in (0, h - 1) or c in (0, w - 1)]
    out = grid.copy()
    out[(grid == 0) & ~flood(grid == 0, border)] = colour
    return out


def reach(grid: np.ndarray, colour: int) -> np.ndarray:
    """Background cells that a 4-connected path of background cells joins to a cell of `colour` (the
    seed) take that colour: a flood fill through a maze, as many moves deep as its longest path."""
    open_cells = (grid == 0) | (grid == colour)
    out = grid.copy()
    out[flood(open_cells, list(zip(*np.nonzero(grid == colour)))) & (grid == 0)] = colour
    return out


# --------------------------------------------------------------------------------------------------
# inputs


def random_grid(rng: np.random.Generator, min_side: int = MIN_SIDE, max_side: int = MAX_SIDE) -> np.ndarray:
    """A grid of random size (sides min_side..max_side) with sparse cells of random colours 1..9 on
    background 0, never all background (an empty grid shows no rule)."""
    h, w = rng.integers(min_side, max_side + 1, size=2)
    density = rng.uniform(0.15, 0.5)
    colours = rng.integers(1, 10, size=(h, w))
    grid = np.where(rng.random((h, w)) < density, colours, 0).astype(np.uint8)
    if not grid.any():
        grid[rng.integers(h), rng.integers(w)] = colours[0, 0]
    return grid


def random_object(rng: np.random.Generator, max_h: int, max_w: int) -> np.ndarray:
    """A 4-connected sprite of 2..6 cells in one or two colours, cropped to its bounding box."""
    canvas = np.zeros((max_h, max_w), dtype=np.uint8)
    colours = rng.integers(1, 10, size=2)
    size = min(int(rng.integers(2, 7)), canvas.size)
    cells = [(int(rng.integers(max_h)), int(rng.integers(max_w)))]
    while len(cells) < size:  # grow from a random cell of the sprite towards a random side
        r, c = cells[int(rng.integers(len(cells)))]
        dr, dc = ((1, 0), (-1, 0), (0, 1), (0, -1))[int(rng.integers(4))]
        if 0 <= r + dr < max_h and 0 <= c + dc < max_w and (r + dr, c + dc) not in cells:
            cells.append((r + dr, c + dc))
    for r, c in cells:
        canvas[r, c] = colours[int(rng.integers(2))]
    rows, cols = np.flatnonzero(canvas.any(1)), np.flatnonzero(canvas.any(0))
    return canvas[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


# --------------------------------------------------------------------------------------------------
# pair generators: (rng) -> (input, output)


def transform_pair(rng: np.random.Generator, rule: Callable[[np.ndarray], np.ndarray]) -> Pair:
    grid = random_grid(rng)
    return grid, np.ascontiguousarray(rule(grid)).astype(np.uint8)


def object_copy_pair(rng: np.random.Generator) -> Pair:
    """One object somewhere in the left half of an even-width grid; the output mirrors it into the right half."""
    h = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
    w = 2 * int(rng.integers(2, MAX_SIDE // 2 + 1))
    sprite = random_object(rng, min(h, 4), min(w // 2, 4))
    grid = np.zeros((h, w), dtype=np.uint8)
    r = int(rng.integers(h - sprite.shape[0] + 1))
    c = int(rng.integers(w // 2 - sprite.shape[1] + 1))
    grid[r:r + sprite.shape[0], c:c + sprite.shape[1]] = sprite
    return grid, mirror_left_half(grid)


def fill_enclosed_pair(rng: np.random.Generator, colour: int) -> Pair:
    """One or two non-overlapping rectangle outlines (in colours other than `colour`), each with an
    empty inside; the output fills the insides."""
    h, w = rng.integers(MIN_SIDE + 2, MAX_SIDE + 1, size=2)
    grid = np.zeros((h, w), dtype=np.uint8)
    outline_colours = [c for c in range(1, 10) if c != colour]
    for _ in range(int(rng.integers(1, 3))):
        rh, rw = int(rng.integers(3, h + 1)), int(rng.integers(3, w + 1))
        r, c = int(rng.integers(h - rh + 1)), int(rng.integers(w - rw + 1))
        box = grid[r:r + rh, c:c + rw]  # a view: writing it writes the grid
        if box.any():  # overlaps an earlier rectangle: one rectangle is enough
            continue
        outline = outline_colours[int(rng.integers(len(outline_colours)))]
        box[[0, -1], :] = outline
        box[:, [0, -1]] = outline
    return grid, fill_enclosed(grid, colour)


def reach_pair(rng: np.random.Generator, wall: int, colour: int) -> Pair:
    """Random `wall` cells (density 0.2-0.45) and one seed cell of `colour`; the output floods the
    seed's colour through the background it reaches."""
    h, w = rng.integers(MIN_SIDE + 2, MAX_SIDE + 1, size=2)
    grid = np.where(rng.random((h, w)) < rng.uniform(0.2, 0.45), wall, 0).astype(np.uint8)
    grid[rng.integers(h), rng.integers(w)] = colour
    return grid, reach(grid, colour)


def colour_permutation(rng: np.random.Generator) -> np.ndarray:
    """A random permutation of colours 1..9 with 0 (background) fixed, as a lookup table [10]."""
    return np.concatenate([[0], 1 + rng.permutation(9)]).astype(np.uint8)


# Families whose rule has no free parameter and applies to any grid.
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "flip_lr": np.fliplr,
    "flip_ud": np.flipud,
    "rotate90": np.rot90,  # counter-clockwise
    "transpose": np.transpose,
    "gravity": gravity,
}
SIMPLE_FAMILIES = ("flip_lr", "flip_ud", "rotate90", "transpose", "colour_map")
HARD_FAMILIES = ("gravity", "object_copy", "fill_enclosed", "reach")
FAMILIES = SIMPLE_FAMILIES + HARD_FAMILIES


def family_generator(family: str, rng: np.random.Generator) -> PairGenerator:
    """The pair generator of one instance of `family`.

    A rule's free parameters (colour_map's permutation, fill_enclosed's colour) are drawn here, once,
    so that every pair of the family's task follows the same rule.
    """
    if family in TRANSFORMS:
        return partial(transform_pair, rule=TRANSFORMS[family])
    if family == "colour_map":
        return partial(transform_pair, rule=partial(map_colours, mapping=colour_permutation(rng)))
    if family == "object_copy":
        return object_copy_pair
    if family == "fill_enclosed":
        return partial(fill_enclosed_pair, colour=int(rng.integers(1, 10)))
    if family == "reach":
        wall, colour = (1 + rng.permutation(9)[:2]).tolist()
        return partial(reach_pair, wall=wall, colour=colour)
    raise ValueError(f"unknown toy family {family!r}; known: {', '.join(FAMILIES)}")


def make_task(family: str, n_train: int, n_test: int, seed: int = 0) -> Task:
    """One task per family: `n_train` demonstration pairs and `n_test` test pairs whose inputs no
    demonstration has (so the test measures the rule, not recall).

    The family's random stream depends on the seed and its name only, so a family's task is the same
    whichever other families are generated beside it.
    """
    rng = np.random.default_rng([seed, zlib.crc32(family.encode())])
    generate = family_generator(family, rng)
    seen: set[bytes] = set()
    pairs: list[Example] = []
    tries = 0
    while len(pairs) < n_train + n_test:
        tries += 1
        if tries > 100 * (n_train + n_test):
            raise ValueError(f"{family}: could not draw {n_train + n_test} distinct inputs")
        grid_in, grid_out = generate(rng)
        key = bytes(grid_in.shape) + grid_in.tobytes()
        if key not in seen:
            seen.add(key)
            pairs.append(Example(grid_in, grid_out))
    return Task(family, tuple(pairs[:n_train]), tuple(pairs[n_train:]), source=f"toy:{family}")


def write_toy_tasks(out_dir: str | Path, families: Sequence[str] = FAMILIES, n_train: int = N_TRAIN,
                    n_test: int = N_TEST, seed: int = 0) -> list[Path]:
    """Write `<family>.json` (ARC's JSON layout, test outputs included) per family; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for family in families:
        path = out_dir / f"{family}.json"
        atomic_write_json(path, make_task(family, n_train, n_test, seed).to_json())
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------------
# training and the report

# The recipe (TRMTrainConfig keys, dotted for the model's) for a 2-core CPU and 10 minutes. Canvas 10
# makes a sequence 100 cells instead of 900, and one puzzle slot replaces 16. The rest is what the
# budget allows (measured; see docs/trm.md):
# - H_cycles 1 and L_cycles 1 put every latent update under grad, and halt_max_steps 1 gives every
#   optimiser step fresh rows. Under the paper's H_cycles 3, L_cycles 2, 6 supervision steps, the
#   same 10 minutes learn colour_map and no geometric family. With this recipe and seed 0,
#   halt_max_steps 2 scored 0.968 and 3 scored 0.672, with accuracy not rising along the steps
#   (3 steps for 27,000 steps: 0.972, still not rising; docs/trm.md has longer runs on all families,
#   and on `reach`, which needs more than one step of this recipe, where accuracy does rise along
#   the steps but one step trained as long still scores higher).
# - Small batches (16) at lr 2e-3, clipped at 1.0: more optimiser steps learn more than bigger batches.
# - 9,000 steps or the time limit, whichever comes first, with a cosine decay to 0.1x at 9,000 steps,
#   so that the run ends settled; at a constant lr (with EMA) a family solved at step 6,449 was
#   unsolved at step 9,764. Alone at 2 threads, 10 minutes held 7,499-9,764 steps on this machine (its
#   speed varies), so the check usually stops near the end of the cosine.
# - puzzle_emb_lr 2e-3, not the paper's 1e-2: the paper's rate is for rows seen once in thousands of
#   steps, and here each family's row is in every batch.
# - No EMA: the EMA averages the network but not the puzzle table, and when every row moves every
#   step the averaged network stops matching the table (at puzzle_emb_lr 1e-2 the export scored 0.70
#   where the raw weights scored 0.94). At 2e-3 EMA changed little (0.964 against 0.948, one seed);
#   the recipe keeps the setting its seeds were measured with.
# - N_TRAIN pairs per family: one pass over the data (9,000 x 16 < 5 x 30,000), so the training
#   accuracy in train_log.jsonl is measured on rows the model has not trained on yet.
TOY_RECIPE = {
    "model.hidden_size": 64,
    "model.num_heads": 4,
    "model.L_layers": 2,
    "model.H_cycles": 1,
    "model.L_cycles": 1,
    "model.puzzle_emb_len": 0,  # ceil(puzzle_emb_ndim / hidden) = 1 slot
    "model.halt_max_steps": 1,
    "model.forward_dtype": "float32",
    "data": None,  # every training row is a demonstration pair of a toy task
    "canvas": MAX_SIDE,
    "translate": False,
    "num_augmentations": 1,
    "batch_size": 16,
    "max_steps": 9000,
    "lr": 2e-3,
    "lr_min_ratio": 0.1,
    "puzzle_emb_lr": 2e-3,
    "grad_clip": 1.0,
    "lr_warmup_steps": 100,
    "ema_decay": None,
    "eval_every": 0,
    "checkpoint_every": 1_000_000,
    "log_every": 50,
    "cache_dir": None,
}


def toy_train_config(task_dir: str | Path, families: Sequence[str], *, hidden: int, minutes: float,
                     out_dir: str | Path, seed: int = 0, overrides: Sequence[str] = ()):
    """The TRMTrainConfig of a toy run: TOY_RECIPE, the run's own values, then ``key=value`` overrides."""
    from hybrid_pipeline.config import load_config
    from hybrid_pipeline.trm.train import TRMTrainConfig

    recipe = {**TOY_RECIPE, "model.hidden_size": hidden, "eval_data": str(task_dir), "eval_tasks": list(families),
              "time_limit_s": 60.0 * minutes, "out_dir": str(out_dir), "seed": seed}
    # JSON scalars are YAML scalars, so the recipe goes through the same parser as the user's overrides.
    return load_config(TRMTrainConfig, None, [f"{k}={json.dumps(v)}" for k, v in recipe.items()] + list(overrides))


@dataclass
class ToyReport:
    """What a toy run measured on each family's test pairs (instances no demonstration showed)."""

    pass_at_1: dict[str, float]  # family -> fraction of test pairs solved by the voted prediction
    accuracy_by_step: dict[str, list[float]]  # family -> exact accuracy after each supervision step
    accuracy_at_halt: dict[str, float]  # family -> exact accuracy at the step where q_halt first says halt
    steps: int  # training steps of the model measured
    seconds: float | None  # the whole train_trm call: data, training and the final evaluation

    def mean_pass_at_1(self, families: Sequence[str]) -> float:
        chosen = [self.pass_at_1[f] for f in families if f in self.pass_at_1]
        return float(np.mean(chosen)) if chosen else float("nan")

    def table(self) -> str:
        n_steps = len(next(iter(self.accuracy_by_step.values())))
        width = max(len(f) for f in [*self.pass_at_1, "mean (simple)"])
        lines = [f"{'family':<{width}}  pass@1  at q_halt  exact accuracy after supervision step 1..{n_steps}"]

        def row(name: str, score: float, at_halt: float, by_step: Sequence[float]) -> str:
            return f"{name:<{width}}  {score:6.3f}  {at_halt:9.3f}  " + " ".join(f"{a:5.3f}" for a in by_step)

        for family, score in self.pass_at_1.items():
            lines.append(row(family, score, self.accuracy_at_halt[family], self.accuracy_by_step[family]))
        for label, group in (("mean (simple)", SIMPLE_FAMILIES), ("mean (hard)", HARD_FAMILIES)):
            chosen = [f for f in group if f in self.pass_at_1]
            if chosen:
                by_step = np.mean([self.accuracy_by_step[f] for f in chosen], axis=0)
                at_halt = float(np.mean([self.accuracy_at_halt[f] for f in chosen]))
                lines.append(row(label, self.mean_pass_at_1(chosen), at_halt, by_step))
        lines.append(f"{self.steps} training steps" + ("" if self.seconds is None else f", {self.seconds:.0f} s"))
        return "\n".join(lines)


def measure(final_dir: str | Path, tasks: Sequence[Task], *, steps: int,
            seconds: float | None = None) -> ToyReport:
    """Score an exported toy model on `tasks`' test pairs: pass@1 of the voted prediction (as the
    trainer's evaluation and `hybrid-arc trm eval` answer: the last supervision step, cropped at EOS),
    exact accuracy after each supervision step, and at the step where the Q head first says halt."""
    import torch

    from hybrid_pipeline.arc.datasets import TRMDataConfig, trm_rows
    from hybrid_pipeline.trm.checkpoint import load_trm
    from hybrid_pipeline.trm.evaluate import (exact_accuracy_at_halt, exact_right_by_step, score_votes,
                                              vote_predictions)

    model, plan = load_trm(final_dir)
    canvas = math.isqrt(model.config.seq_len)
    ranks = score_votes(vote_predictions(model, tasks, plan, canvas=canvas), tasks).ranks
    rows_config = TRMDataConfig(splits=("test",), translate=False, canvas=canvas)
    pass_at_1, accuracy_by_step, accuracy_at_halt = {}, {}, {}
    for task in tasks:
        pass_at_1[task.id] = float(np.mean([r == 1 for r in ranks[task.id]]))
        cols = trm_rows([task], rows_config, plan)
        tensors = [torch.from_numpy(cols[k].astype(np.int64)) for k in ("inputs", "labels", "puzzle_id")]
        right, q_halt = exact_right_by_step(model, *tensors)
        accuracy_by_step[task.id] = right.float().mean(1).tolist()
        accuracy_at_halt[task.id] = exact_accuracy_at_halt(right, q_halt)
    return ToyReport(pass_at_1, accuracy_by_step, accuracy_at_halt, steps, seconds)


def train_and_measure(config, families: Sequence[str], *, progress: bool = True) -> ToyReport:
    """Train with `train_trm`, then `measure` the exported model on each family's test pairs."""
    from hybrid_pipeline.arc.tasks import load_tasks
    from hybrid_pipeline.trm.train import train_trm

    started = time.perf_counter()
    result = train_trm(config, progress=progress)
    seconds = time.perf_counter() - started
    tasks = load_tasks(config.eval_data, ids=families).raise_if_problems().tasks
    return measure(result.final_dir, tasks, steps=result.steps, seconds=seconds)


def train(out: Path, families: Sequence[str], args: argparse.Namespace,
          parser: argparse.ArgumentParser) -> ToyReport:
    from hybrid_pipeline.config import ConfigError

    task_dir = out / "tasks"
    write_toy_tasks(task_dir, families, args.n_train, args.n_test, args.seed)
    try:
        config = toy_train_config(task_dir, families, hidden=args.hidden, minutes=args.minutes,
                                  out_dir=out / "trm", seed=args.seed, overrides=args.overrides)
    except ConfigError as e:
        parser.error(str(e))
    return train_and_measure(config, families, progress=not args.quiet)


def rescore(out: Path, families: Sequence[str], args: argparse.Namespace,
            parser: argparse.ArgumentParser) -> ToyReport:
    """`measure` a finished run's model on freshly drawn tasks, after checking that they are the ones
    it trained on (so that their test inputs are unseen)."""
    from hybrid_pipeline.arc.errors import ARCDataError
    from hybrid_pipeline.arc.tasks import load_tasks

    summary_path = out / "trm" / "summary.json"
    if not summary_path.is_file():
        parser.error(f"--rescore: {summary_path} not found; --out must be a finished toy run's --out")
    try:
        trained = {t.id: t for t in load_tasks(out / "tasks", ids=families).raise_if_problems().tasks}
    except ARCDataError as e:
        parser.error(f"--rescore: {e.problems[0]}")
    tasks = [make_task(f, args.n_train, args.n_test, args.seed) for f in families]
    for task in tasks:
        if task.id not in trained or trained[task.id].to_json()["train"] != task.to_json()["train"]:
            parser.error(f"--rescore: {out / 'tasks' / (task.id + '.json')} is not the task that --seed {args.seed} "
                         f"--n-train {args.n_train} draws for {task.id}; give the run's own --seed and --n-train")
    return measure(out / "trm" / "final", tasks, steps=json.loads(summary_path.read_text())["steps"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(SIMPLE_FAMILIES),
                        help=f"comma-separated, from {', '.join(FAMILIES)} (default: the simple ones)")
    parser.add_argument("--hidden", type=int, default=TOY_RECIPE["model.hidden_size"], help="TRM width")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock limit on training")
    parser.add_argument("--check", type=float, default=None, metavar="X",
                        help="exit 1 if the mean pass@1 of the simple families is below X")
    parser.add_argument("--out", default="runs/toy", help="tasks, checkpoints and logs go here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=N_TRAIN, help="demonstration pairs per family")
    parser.add_argument("--n-test", type=int, default=N_TEST, help="test pairs (unseen instances) per family")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--rescore", action="store_true",
                        help="do not train: score the model an earlier run exported to --out on this call's "
                             "tasks (give that run's --families, --seed and --n-train; a larger --n-test "
                             "adds unseen instances)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="TRMTrainConfig overrides on top of the toy recipe, e.g. batch_size=32 model.L_cycles=2")
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        parser.error(f"unknown families {', '.join(unknown)}; known: {', '.join(FAMILIES)}" if unknown
                     else "--families is empty")
    if args.check is not None and not set(families) & set(SIMPLE_FAMILIES):
        parser.error("--check needs at least one simple family: " + ", ".join(SIMPLE_FAMILIES))

    if args.rescore and args.overrides:
        parser.error(f"--rescore trains nothing, so overrides do not apply: {' '.join(args.overrides)}")

    out = Path(args.out)
    report = rescore(out, families, args, parser) if args.rescore else train(out, families, args, parser)
    print(report.table())
    if args.check is not None:
        simple = report.mean_pass_at_1(SIMPLE_FAMILIES)
        verdict = "passed" if simple >= args.check else "FAILED"
        print(f"check {verdict}: mean pass@1 of the simple families {simple:.3f}, required {args.check:.3f}")
        return 0 if simple >= args.check else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
