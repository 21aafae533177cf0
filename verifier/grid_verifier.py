"""GridVerifier: what a task's demonstrations imply about a candidate answer, as structured problems.

Checks, in order (each failure is one `Problem`):
  - "parse" (text that holds no well-formed grid), "format" (not a rectangular 2-D grid), "size"
    (a side outside 1..30), "values" (a cell that is not an integer 0..9). These end the check: what
    follows needs a grid, and the score is 0.
  - "shape": the output-shape rules consistent with every train pair (same as input, transposed,
    fixed, scaled by a constant factor per axis, fractional included) and the shapes they give for
    this test input; the candidate must have one of them. No rule fits every pair -> no check.
  - "palette": colours in the candidate that appear in no train output and not in the test input.
  - "leave_one_out" (with a predict function): each train output predicted from the other pairs;
    a wrong prediction lists the differing cells. This measures the predictor on this task, so it
    is the same for every candidate of one predictor and ranks predictors, not their candidates.
  - "augmentation" (with a predict function): the task is predicted under dihedral transforms and
    mapped back; each prediction that differs from the candidate is a problem.

Score (deterministic, in [0, 1], for ranking candidates): 0 for a candidate that is not a valid grid,
else ``1 - shape_penalty*[shape wrong] - min(palette_penalty * foreign colours, palette_max)
- leave_one_out_penalty * (wrong train predictions / train pairs) - augmentation_penalty *
(disagreeing augmentations / augmentations)``, floored at 0 and rounded to 6 decimals. Weights are
`VerifierConfig` fields.

Nothing here reads a task's test outputs (`task.test[i].output`): the verifier sees what a solver sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Sequence

import numpy as np

from hybrid_pipeline.arc.grids import Augmentation
from hybrid_pipeline.arc.tasks import MAX_SIDE, NUM_COLOURS, Task
from hybrid_pipeline.arc.text import AnswerParseError, parse_grid
from verifier.grid_cells import cell_value, plain_rows
from verifier.verdict import Problem, Verdict

MAX_DIFF_CELLS = 20

Shape = tuple[int, int]
Pair = tuple[np.ndarray, np.ndarray]
# predict(train_pairs, test_input) -> predicted output grid, or None when it has no answer.
PredictFn = Callable[[list[Pair], np.ndarray], Any]

# Kinds that mean "not a grid at all": nothing else can be checked and the score is 0.
STRUCTURAL_KINDS = ("parse", "format", "size", "values")


# --------------------------------------------------------------------------------------------------
# Grids from whatever a proposer returns


def _json_value(value: Any) -> Any:
    """A cell value as something json.dumps accepts (offending values go into Problem.got)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return repr(value)[:40]


def as_grid(candidate: Any, where: str = "candidate") -> tuple[np.ndarray | None, list[Problem]]:
    """Candidate (array, list of lists, or text) -> uint8 grid [h, w], or None with the problems."""
    if isinstance(candidate, str):
        try:
            return parse_grid(candidate), []
        except AnswerParseError as e:
            excerpt = candidate.strip()[:80]
            return None, [Problem("parse", where, expected="rows of digits 0-9, one line per row",
                                  got=excerpt, detail=str(e))]
    rows = plain_rows(candidate)
    if isinstance(rows, str):
        return None, [Problem("format", where, expected="a rectangular 2-D grid", got=rows, detail=rows)]
    height, width = len(rows), (len(rows[0]) if rows else 0)
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        return None, [Problem("size", where, expected=[[1, 1], [MAX_SIDE, MAX_SIDE]], got=[height, width],
                              detail=f"grid is {height}x{width}, expected sides 1 to {MAX_SIDE}")]
    cells = [[cell_value(v) for v in row] for row in rows]
    bad = sorted({_json_value(v) for row, vals in zip(rows, cells) for v, c in zip(row, vals) if c is None},
                 key=repr)
    if bad:
        return None, [Problem("values", where, expected=list(range(NUM_COLOURS)), got=bad,
                              detail=f"cells {bad} are not integers 0..9")]
    return np.array(cells, dtype=np.uint8), []


# --------------------------------------------------------------------------------------------------
# Cell differences (shared with the sandbox)


@dataclass(frozen=True)
class GridDiff:
    """How `got` differs from `expected`. `cells` holds (row, col, expected, got), row-major, capped."""

    expected_shape: Shape
    got_shape: Shape
    n_cells: int  # differing cells; 0 when the shapes differ (cells are not comparable then)
    cells: tuple[tuple[int, int, int, int], ...]

    @property
    def same_shape(self) -> bool:
        return self.expected_shape == self.got_shape

    @property
    def equal(self) -> bool:
        return self.same_shape and self.n_cells == 0

    def describe(self) -> str:
        if not self.same_shape:
            return (f"shape {self.got_shape[0]}x{self.got_shape[1]}, "
                    f"expected {self.expected_shape[0]}x{self.expected_shape[1]}")
        total = self.expected_shape[0] * self.expected_shape[1]
        listed = f" (first {len(self.cells)} listed)" if len(self.cells) < self.n_cells else ""
        return f"{self.n_cells} of {total} cells differ{listed}"

    def to_dict(self) -> dict:
        return {"expected_shape": list(self.expected_shape), "got_shape": list(self.got_shape),
                "n_cells": self.n_cells, "cells": [list(c) for c in self.cells]}

    @classmethod
    def from_dict(cls, data: dict) -> GridDiff:
        return cls(tuple(data["expected_shape"]), tuple(data["got_shape"]), int(data["n_cells"]),
                   tuple(tuple(c) for c in data["cells"]))


def grid_diff(expected: np.ndarray, got: np.ndarray, *, max_cells: int = MAX_DIFF_CELLS) -> GridDiff:
    expected, got = np.asarray(expected), np.asarray(got)
    if expected.shape != got.shape:
        return GridDiff(expected.shape, got.shape, 0, ())
    rows, cols = np.nonzero(expected != got)
    cells = tuple((int(r), int(c), int(expected[r, c]), int(got[r, c]))
                  for r, c in zip(rows[:max_cells], cols[:max_cells]))
    return GridDiff(expected.shape, got.shape, int(rows.size), cells)


def diff_problem(kind: str, where: str, diff: GridDiff, *, detail_prefix: str = "") -> Problem:
    """A Problem for a grid mismatch: expected/got are {"shape": [h, w], "cells": [[r, c, colour], ...]}."""
    expected = {"shape": list(diff.expected_shape), "cells": [[r, c, e] for r, c, e, _ in diff.cells]}
    got = {"shape": list(diff.got_shape), "cells": [[r, c, g] for r, c, _, g in diff.cells]}
    return Problem(kind, where, expected=expected, got=got, detail=detail_prefix + diff.describe())


# --------------------------------------------------------------------------------------------------
# Output-shape rules


@dataclass(frozen=True)
class ShapeRule:
    """A way the output shape follows from the input shape, consistent with every train pair.

    name: "same_as_input", "transposed", "fixed" (`fixed` holds the shape) or "scaled" (`scale`
    holds the factor per axis, a Fraction, so halving and thirding are rules too).
    """

    name: str
    fixed: Shape | None = None
    scale: tuple[Fraction, Fraction] | None = None

    def predict(self, input_shape: Shape) -> Shape | None:
        """Output shape for an input shape; None when the rule gives no valid grid for it."""
        h, w = input_shape
        if self.name == "same_as_input":
            shape = (h, w)
        elif self.name == "transposed":
            shape = (w, h)
        elif self.name == "fixed":
            shape = self.fixed
        else:
            sh, sw = h * self.scale[0], w * self.scale[1]
            if sh.denominator != 1 or sw.denominator != 1:
                return None
            shape = (int(sh), int(sw))
        return shape if all(1 <= side <= MAX_SIDE for side in shape) else None

    def describe(self) -> str:
        if self.name == "same_as_input":
            return "output shape equals input shape"
        if self.name == "transposed":
            return "output shape is the input shape transposed"
        if self.name == "fixed":
            return f"output is always {self.fixed[0]}x{self.fixed[1]}"
        return f"output is the input scaled by {self.scale[0]} (rows) x {self.scale[1]} (cols)"


def infer_shape_rules(pairs: Sequence[Pair]) -> list[ShapeRule]:
    """Every rule of the four kinds that holds for all pairs (empty: the shape rule is unknown)."""
    shapes = [(tuple(i.shape), tuple(o.shape)) for i, o in pairs]
    if not shapes:
        return []
    rules = []
    if all(i == o for i, o in shapes):
        rules.append(ShapeRule("same_as_input"))
    if all(o == (i[1], i[0]) for i, o in shapes):
        rules.append(ShapeRule("transposed"))
    if len({o for _, o in shapes}) == 1:
        rules.append(ShapeRule("fixed", fixed=shapes[0][1]))
    ratios = {(Fraction(o[0], i[0]), Fraction(o[1], i[1])) for i, o in shapes}
    if len(ratios) == 1 and ratios != {(1, 1)}:
        rules.append(ShapeRule("scaled", scale=ratios.pop()))
    return rules


# --------------------------------------------------------------------------------------------------
# Predictions for the consistency checks


@dataclass(frozen=True, eq=False)
class ConsistencyPredictions:
    """What a predictor says about one test input of one task; independent of any candidate.

    Compute it once with `predict_consistency` and pass it to `GridVerifier.check(predictions=...)`
    for every candidate, so an expensive predictor runs once per test input, not once per candidate.
    leave_one_out[k]: train output k predicted from the other pairs (None: no prediction); empty when
    the task has a single train pair. augmented: (augmentation, prediction mapped back or None).
    """

    test_index: int
    leave_one_out: tuple[np.ndarray | None, ...]
    augmented: tuple[tuple[Augmentation, np.ndarray | None], ...]


# Rotation by 90 degrees, left-right flip, transpose: they change the shape (for non-square grids),
# the reading direction and the axis roles, which a predictor that truly got the rule must survive.
DEFAULT_AUGMENTATIONS = (Augmentation(1), Augmentation(4), Augmentation(6))


def _copy_pairs(pairs: Sequence[Pair]) -> list[Pair]:
    # Copies: a predictor that writes into its inputs must not change the task.
    return [(i.copy(), o.copy()) for i, o in pairs]


def _prediction(value: Any) -> np.ndarray | None:
    """A predictor's return value as a grid; anything that is not a valid grid counts as no prediction."""
    if value is None:
        return None
    grid, problems = as_grid(value)
    return None if problems else grid


def predict_consistency(task: Task, test_index: int, predict: PredictFn, *,
                        augmentations: Sequence[Augmentation] = DEFAULT_AUGMENTATIONS) -> ConsistencyPredictions:
    """Run `predict` for the leave-one-out and augmentation checks (never reads test outputs)."""
    _check_test_index(task, test_index)
    train = [(ex.input, ex.output) for ex in task.train]
    loo: list[np.ndarray | None] = []
    if len(train) >= 2:
        for k, (grid_in, _) in enumerate(train):
            others = _copy_pairs(train[:k] + train[k + 1:])
            loo.append(_prediction(predict(others, grid_in.copy())))
    test_input = task.test[test_index].input
    augmented = []
    for aug in augmentations:
        pairs = [(aug.apply(i), aug.apply(o)) for i, o in train]
        pred = _prediction(predict(pairs, aug.apply(test_input)))
        augmented.append((aug, None if pred is None else aug.invert(pred)))
    return ConsistencyPredictions(test_index, tuple(loo), tuple(augmented))


def _check_test_index(task: Task, test_index: int) -> None:
    if not 0 <= test_index < len(task.test):
        raise IndexError(f"task {task.id}: test index {test_index} out of range, "
                         f"expected 0..{len(task.test) - 1}")


# --------------------------------------------------------------------------------------------------
# The verifier


@dataclass(frozen=True)
class VerifierConfig:
    """Penalty weights of the score (see the module docstring) and the consistency-check settings."""

    shape_penalty: float = 0.5
    palette_penalty: float = 0.1  # per foreign colour
    palette_penalty_max: float = 0.3
    leave_one_out_penalty: float = 0.2  # times the fraction of train pairs predicted wrongly
    augmentation_penalty: float = 0.2  # times the fraction of augmentations that disagree
    augmentations: tuple[Augmentation, ...] = DEFAULT_AUGMENTATIONS
    max_diff_cells: int = MAX_DIFF_CELLS


class GridVerifier:
    """Checks candidate answers for one test input of a task; see the module docstring."""

    def __init__(self, config: VerifierConfig | None = None):
        self.config = config or VerifierConfig()

    def check(self, task: Task, test_index: int, candidate: Any, *, predict: PredictFn | None = None,
              predictions: ConsistencyPredictions | None = None) -> Verdict:
        """Verdict on `candidate` (array, list of lists, or text) as the answer to test input `test_index`.

        `predict` enables the leave-one-out and augmentation checks; `predictions` (from
        `self.predictions`) reuses predictions made once for several candidates. Not both.
        """
        _check_test_index(task, test_index)
        if predict is not None and predictions is not None:
            raise ValueError("pass either predict or predictions, not both")
        where = f"test {test_index}"
        grid, problems = as_grid(candidate, where)
        if grid is None:
            return Verdict(False, 0.0, tuple(problems))
        if predict is not None:
            predictions = self.predictions(task, test_index, predict)
        if predictions is not None and predictions.test_index != test_index:
            raise ValueError(f"task {task.id}: predictions are for test {predictions.test_index}, "
                             f"checking test {test_index}")

        penalty = 0.0
        shape_problem = self._shape(task, test_index, grid)
        if shape_problem is not None:
            problems.append(shape_problem)
            penalty += self.config.shape_penalty
        palette_problem = self._palette(task, test_index, grid)
        if palette_problem is not None:
            problems.append(palette_problem)
            penalty += min(self.config.palette_penalty * len(palette_problem.got),
                           self.config.palette_penalty_max)
        if predictions is not None:
            loo = self._leave_one_out(task, predictions)
            if predictions.leave_one_out:
                penalty += self.config.leave_one_out_penalty * len(loo) / len(predictions.leave_one_out)
            problems.extend(loo)
            aug = self._augmentation(test_index, grid, predictions)
            if predictions.augmented:
                penalty += self.config.augmentation_penalty * len(aug) / len(predictions.augmented)
            problems.extend(aug)
        score = round(max(0.0, 1.0 - penalty), 6)
        return Verdict(not problems, score, tuple(problems))

    def predictions(self, task: Task, test_index: int, predict: PredictFn) -> ConsistencyPredictions:
        return predict_consistency(task, test_index, predict, augmentations=self.config.augmentations)

    # Each check returns its problem(s); `check` adds the penalties.

    def _shape(self, task: Task, test_index: int, grid: np.ndarray) -> Problem | None:
        rules = infer_shape_rules([(ex.input, ex.output) for ex in task.train])
        test_shape = tuple(task.test[test_index].input.shape)
        allowed = {}
        for rule in rules:
            shape = rule.predict(test_shape)
            if shape is not None:
                allowed.setdefault(shape, rule)
        if not allowed or grid.shape in allowed:
            return None
        shapes = sorted(allowed)
        reasons = "; ".join(f"{s[0]}x{s[1]} ({allowed[s].describe()})" for s in shapes)
        return Problem("shape", f"test {test_index}", expected=[list(s) for s in shapes],
                       got=list(grid.shape),
                       detail=f"shape {grid.shape[0]}x{grid.shape[1]}; the train pairs imply {reasons}")

    def _palette(self, task: Task, test_index: int, grid: np.ndarray) -> Problem | None:
        allowed = set(np.unique(task.test[test_index].input).tolist())
        for ex in task.train:
            allowed.update(np.unique(ex.output).tolist())
        foreign = sorted(set(np.unique(grid).tolist()) - allowed)
        if not foreign:
            return None
        return Problem("palette", f"test {test_index}", expected=sorted(allowed), got=foreign,
                       detail=f"colours {foreign} appear in no train output and not in the test input")

    def _leave_one_out(self, task: Task, predictions: ConsistencyPredictions) -> list[Problem]:
        problems = []
        for k, pred in enumerate(predictions.leave_one_out):
            expected = task.train[k].output
            where = f"train {k}"
            if pred is None:
                problems.append(Problem("leave_one_out", where, expected={"shape": list(expected.shape)},
                                        got=None, detail="no prediction from the other train pairs"))
                continue
            diff = grid_diff(expected, pred, max_cells=self.config.max_diff_cells)
            if not diff.equal:
                problems.append(diff_problem("leave_one_out", where, diff,
                                             detail_prefix="predicted from the other pairs: "))
        return problems

    def _augmentation(self, test_index: int, grid: np.ndarray,
                      predictions: ConsistencyPredictions) -> list[Problem]:
        # expected: the prediction made under the augmentation and mapped back; got: the candidate.
        problems = []
        for aug, pred in predictions.augmented:
            where = f"test {test_index} under {aug.name}"
            if pred is None:
                problems.append(Problem("augmentation", where, expected=None, got={"shape": list(grid.shape)},
                                        detail="no prediction under this augmentation"))
                continue
            diff = grid_diff(pred, grid, max_cells=self.config.max_diff_cells)
            if not diff.equal:
                problems.append(diff_problem("augmentation", where, diff,
                                             detail_prefix="candidate vs prediction under augmentation: "))
        return problems
