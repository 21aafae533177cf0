"""Task families for measuring a solver on tasks it never trained on, and the interface of a method.

Each family is one kind of rule with a per-task parameter that only the task's demonstrations
reveal: which dihedral transform, which colour permutation, which shift, which size->colour table.
A model that learnt the family from thousands of training tasks still has to read (or adapt to) a
new task's demonstrations to answer its test input: the TRM's per-task puzzle embedding has no row
for a task it never trained on, which is what `experiments/bench_unseen.py` measures.

Families (grids of side MIN_SIDE..MAX_SIDE, so a CANVAS x CANVAS TRM canvas holds every grid):

- `dihedral`: the output is one of the 7 dihedral transforms other than the identity
  (`arc.grids.dihedral` 1..7: three rotations, four reflections).
- `colour_perm`: a permutation of colours 1..9 (0, the background, stays).
- `translate`: every cell moves by (dr, dc), -2..2 each, not both 0, within the grid's own size;
  cells pushed past an edge come back in at the opposite edge (a cyclic shift, `np.roll`), so the
  output holds the same cells and the shift is a bijection.
- `size_recolour`: objects (4-connected groups of colour 5 cells, 1..4 cells each, never touching
  one another, diagonally included) take the colour the task's table gives their size: an
  injective map from sizes 1..4 to colours other than 5.

Each task has N_DEMOS demonstrations and one test pair, drawn until the demonstrations determine
the test output (every parameter value that fits the demonstrations gives the same test output),
so a perfect solver scores 1.0. Task ids are `<family>-<split>-s<seed>-<index>`, with `split`
`train` or `heldout`: unique, deterministic from the seed, and a held-out id is never a training id.

Chance level (`chance`) is the score of a solver that knows the family but not the task: the
fraction of the family's parameter values that give the expected test output (for colour_perm
(9-k)!/9! with k the test input's colours, for size_recolour 1/(8*7*..) over its object sizes).

A method under test is `Method = Callable[[list[Task], list[Task], MethodBudget], MethodResult]`:
it gets the family's training tasks (with test outputs), the held-out tasks without their test
outputs, and a budget, and gives its one answer (pass@1) per held-out task, which the benchmark
scores exactly against the test output.
"""

from __future__ import annotations

import math
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_pipeline.arc.files import atomic_write_json
from hybrid_pipeline.arc.grids import NUM_DIHEDRAL, dihedral
from hybrid_pipeline.arc.tasks import Example, Task

# experiments/ is not a package: its scripts import one another by module name from their own folder.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from toy_tasks import colour_permutation, flood, map_colours, random_grid  # noqa: E402

MIN_SIDE, MAX_SIDE = 3, 8  # grid sides
CANVAS = MAX_SIDE  # the TRM canvas these tasks fit
N_DEMOS = 3  # demonstrations per task (plus one test pair)
N_TRAIN_TASKS, N_HELDOUT_TASKS = 2000, 200  # per family
SPLITS = ("train", "heldout")

SHIFTS = tuple((dr, dc) for dr in range(-2, 3) for dc in range(-2, 3) if (dr, dc) != (0, 0))
OBJECT_COLOUR = 5  # size_recolour's input objects
OBJECT_SIZES = (1, 2, 3, 4)
RECOLOURS = tuple(c for c in range(1, 10) if c != OBJECT_COLOUR)  # colours a size can map to


# --------------------------------------------------------------------------------------------------
# rules


def translate(grid: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """Every cell moves by shift = (rows down, columns right); cells past an edge wrap to the opposite edge."""
    return np.roll(grid, shift, axis=(0, 1)).astype(np.uint8)


def objects(grid: np.ndarray) -> list[np.ndarray]:
    """The 4-connected groups of non-background cells, as boolean masks, in row-major order of their first cell."""
    found: list[np.ndarray] = []
    seen = np.zeros(grid.shape, dtype=bool)
    for r, c in zip(*np.nonzero(grid)):
        if not seen[r, c]:
            mask = flood(grid != 0, [(int(r), int(c))])
            seen |= mask
            found.append(mask)
    return found


def recolour_by_size(grid: np.ndarray, table: dict[int, int]) -> np.ndarray:
    """Each object (`objects`) of n cells takes colour table[n]; objects of a size the table lacks stay."""
    out = grid.copy()
    for mask in objects(grid):
        size = int(mask.sum())
        if size in table:
            out[mask] = table[size]
    return out.astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# inputs


def small_grid(rng: np.random.Generator) -> np.ndarray:
    return random_grid(rng, MIN_SIDE, MAX_SIDE)


def object_grid(rng: np.random.Generator) -> np.ndarray:
    """2..5 objects of sizes 1..4 in OBJECT_COLOUR on a 5..MAX_SIDE grid, no two touching (diagonals included)."""
    h, w = (int(s) for s in rng.integers(5, MAX_SIDE + 1, size=2))
    grid = np.zeros((h, w), dtype=np.uint8)
    wanted = int(rng.integers(2, 6))
    placed = tries = 0
    while placed < wanted and tries < 50:
        tries += 1
        cells = _polyomino(rng, int(rng.choice(OBJECT_SIZES)))
        rows, cols = zip(*cells)
        r0 = int(rng.integers(h - max(rows)))
        c0 = int(rng.integers(w - max(cols)))
        cells = [(r + r0, c + c0) for r, c in cells]
        if any(grid[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].any() for r, c in cells):
            continue  # would touch an object placed earlier
        for r, c in cells:
            grid[r, c] = OBJECT_COLOUR
        placed += 1
    return grid


def _polyomino(rng: np.random.Generator, size: int) -> list[tuple[int, int]]:
    """`size` 4-connected cells grown from (0, 0) by random steps, shifted to non-negative coordinates."""
    cells = [(0, 0)]
    while len(cells) < size:
        r, c = cells[int(rng.integers(len(cells)))]
        dr, dc = ((1, 0), (-1, 0), (0, 1), (0, -1))[int(rng.integers(4))]
        if (r + dr, c + dc) not in cells:
            cells.append((r + dr, c + dc))
    r_min, c_min = min(r for r, _ in cells), min(c for _, c in cells)
    return [(r - r_min, c - c_min) for r, c in cells]


# --------------------------------------------------------------------------------------------------
# families


@dataclass(frozen=True)
class Family:
    """A rule with a per-task parameter.

    draw_parameter(rng) picks a task's parameter; draw_input(rng) one input grid; apply(grid, p) the
    rule; determined(demos, test_input) whether the demonstrations fix the test output; chance(demos,
    test_input, expected) the fraction of parameter values that give the expected output.
    """

    name: str
    draw_parameter: Callable[[np.random.Generator], Any]
    draw_input: Callable[[np.random.Generator], np.ndarray]
    apply: Callable[[np.ndarray, Any], np.ndarray]
    determined: Callable[[Sequence[Example], np.ndarray], bool]
    chance: Callable[[np.ndarray, np.ndarray], float]


def _enumerated(parameters: Sequence[Any], apply: Callable[[np.ndarray, Any], np.ndarray]):
    """determined() and chance() of a family with few parameter values: try them all."""

    def fits(p: Any, demos: Sequence[Example]) -> bool:
        return all(_same(apply(ex.input, p), ex.output) for ex in demos)

    def determined(demos: Sequence[Example], test_input: np.ndarray) -> bool:
        answers = {_key(apply(test_input, p)) for p in parameters if fits(p, demos)}
        return len(answers) == 1

    def chance(test_input: np.ndarray, expected: np.ndarray) -> float:
        return sum(_same(apply(test_input, p), expected) for p in parameters) / len(parameters)

    return determined, chance


def _colours(grid: np.ndarray) -> set[int]:
    return set(np.unique(grid).tolist()) - {0}


def _sizes(grid: np.ndarray) -> set[int]:
    return {int(m.sum()) for m in objects(grid)}


def _colour_perm_chance(test_input: np.ndarray, expected: np.ndarray) -> float:
    k = len(_colours(test_input))  # permutations that agree on these k colours: (9-k)! of 9!
    return math.factorial(9 - k) / math.factorial(9)


def _size_recolour_chance(test_input: np.ndarray, expected: np.ndarray) -> float:
    m = len(_sizes(test_input))  # injective tables agreeing on these m sizes: 1 / (8 * 7 * ...)
    return 1.0 / math.perm(len(RECOLOURS), m)


def _size_table(rng: np.random.Generator) -> dict[int, int]:
    colours = rng.permutation(RECOLOURS)[:len(OBJECT_SIZES)]
    return {size: int(c) for size, c in zip(OBJECT_SIZES, colours)}


FAMILIES: dict[str, Family] = {
    "dihedral": Family("dihedral", lambda rng: int(rng.integers(1, NUM_DIHEDRAL)), small_grid, dihedral,
                       *_enumerated(range(1, NUM_DIHEDRAL), dihedral)),
    "colour_perm": Family("colour_perm", colour_permutation, small_grid, map_colours,
                          lambda demos, x: _colours(x) <= set().union(*(_colours(ex.input) for ex in demos)),
                          _colour_perm_chance),
    "translate": Family("translate", lambda rng: SHIFTS[int(rng.integers(len(SHIFTS)))], small_grid, translate,
                        *_enumerated(SHIFTS, translate)),
    "size_recolour": Family("size_recolour", _size_table, object_grid, recolour_by_size,
                            lambda demos, x: _sizes(x) <= set().union(*(_sizes(ex.input) for ex in demos)),
                            _size_recolour_chance),
}


def _same(a: np.ndarray, b: np.ndarray | None) -> bool:
    return b is not None and a.shape == b.shape and bool((a == b).all())


def _key(grid: np.ndarray) -> bytes:
    return bytes(grid.shape) + np.ascontiguousarray(grid, np.uint8).tobytes()


# --------------------------------------------------------------------------------------------------
# tasks


def task_id(family: str, split: str, seed: int, index: int) -> str:
    return f"{family}-{split}-s{seed}-{index:05d}"


def make_task(family: str, split: str, index: int, *, seed: int = 0, n_demos: int = N_DEMOS) -> Task:
    """Task `index` of a family's split: its parameter, `n_demos` demonstrations and one test pair,
    from a random stream of (seed, family, split, index) alone. Redrawn until the demonstrations
    determine the test output and every input is distinct and changed by the rule."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    spec = FAMILIES[family]
    rng = np.random.default_rng([seed, zlib.crc32(family.encode()), SPLITS.index(split), index])
    parameter = spec.draw_parameter(rng)
    for _ in range(1000):
        pairs: list[Example] = []
        keys: set[bytes] = set()
        while len(pairs) < n_demos + 1:
            grid = spec.draw_input(rng)
            out = spec.apply(grid, parameter)
            if _key(grid) not in keys and not _same(grid, out):  # an unchanged pair shows nothing
                keys.add(_key(grid))
                pairs.append(Example(grid, out))
        demos, test = pairs[:n_demos], pairs[n_demos]
        if spec.determined(demos, test.input):
            return Task(task_id(family, split, seed, index), tuple(demos), (test,), source=f"unseen:{family}")
    raise RuntimeError(f"{family} {split} {index}: no determined task in 1000 draws")


def family_tasks(family: str, split: str, n: int, *, seed: int = 0, n_demos: int = N_DEMOS) -> list[Task]:
    """Tasks 0..n-1 of a family's split (the first n of any longer list with the same seed)."""
    return [make_task(family, split, i, seed=seed, n_demos=n_demos) for i in range(n)]


def chance(family: str, task: Task) -> float:
    """Probability that a solver drawing the family's parameter at random answers `task`'s test exactly."""
    test = task.test[0]
    if test.output is None:
        raise ValueError(f"{task.id}: chance needs the test output")
    return FAMILIES[family].chance(test.input, test.output)


def write_challenges(tasks: Sequence[Task], path: str | Path, *, with_solutions: bool = True) -> Path:
    """`tasks` as a Kaggle challenges file (test outputs left out) at `path`, whose name must contain
    "challenges", and, `with_solutions`, the matching solutions file beside it (what `load_tasks` reads)."""
    path = Path(path)
    if "challenges" not in path.name:
        raise ValueError(f"{path}: a challenges file's name must contain 'challenges'")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {t.id: t.to_json(with_solutions=False) for t in tasks})
    if with_solutions:
        atomic_write_json(path.with_name(path.name.replace("challenges", "solutions")),
                          {t.id: [ex.output.tolist() for ex in t.test] for t in tasks})
    return path


# --------------------------------------------------------------------------------------------------
# the interface of a method under test


@dataclass(frozen=True)
class MethodBudget:
    """What a method may spend on one family. CPU seconds are `time.process_time()` of the process.

    A method trains within `train_steps` optimiser steps (and stops at `train_cpu_s`, when given),
    and spends at most `test_steps` adaptation steps (`test_cpu_s_per_task`, when given) per held-out
    task. `quick` asks for a smoke-test size. `work_dir` is where it may write (checkpoints, logs).
    """

    train_steps: int
    test_steps: int
    train_cpu_s: float | None = None
    test_cpu_s_per_task: float | None = None
    seed: int = 0
    quick: bool = False
    work_dir: str | None = None


@dataclass
class MethodResult:
    """One method on one family's held-out tasks.

    A method sees no test output, so it answers through `predictions` (its one grid per held-out
    task, None for no answer) and leaves `correct` empty: the benchmark fills `correct` from them
    (`score`). A result with `correct` and no `predictions` is taken as it is.
    """

    name: str
    correct: dict[str, bool]  # held-out task id -> its one answer (pass@1) equals the test output exactly
    train_cpu_s: float  # CPU seconds spent training (0 for a method that trains nothing)
    test_cpu_s_per_task: float  # mean CPU seconds per held-out task at test time
    notes: str = ""
    predictions: dict[str, np.ndarray | None] = field(default_factory=dict)  # held-out task id -> its answer

    @property
    def accuracy(self) -> float:
        return sum(self.correct.values()) / max(len(self.correct), 1)

    @property
    def standard_error(self) -> float:
        n = max(len(self.correct), 1)
        return math.sqrt(self.accuracy * (1 - self.accuracy) / n)


# training tasks (with test outputs), held-out tasks (without), budget -> result
Method = Callable[[list[Task], list[Task], MethodBudget], MethodResult]


def score(result: MethodResult, heldout: Sequence[Task]) -> MethodResult:
    """`result` with `correct` from its predictions against the held-out test outputs (pass@1, exact)."""
    if not result.predictions:
        return result  # a method that scored itself
    correct = {}
    for task in heldout:
        grid, expected = result.predictions.get(task.id), task.test[0].output
        correct[task.id] = grid is not None and grid.shape == expected.shape and bool((grid == expected).all())
    return replace(result, correct=correct)
