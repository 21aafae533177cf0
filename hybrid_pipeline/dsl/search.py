"""Program search: compositions of DSL primitives that reproduce every demonstration of a task.

A *state* is what a program prefix makes of every grid of the task at once: the train inputs and
the test inputs, transformed. The search runs level by level (program length) over states, not
program strings: two prefixes that give the same grids everywhere are one state (kept under the
shorter, earlier program), so the same work is never done twice. From each expanded state it
applies every (primitive, option) pair; after each new state it also tries every *inferred*
primitive as a last step (a colour map, an object colour table read off the demonstrations).
Within a level, states are expanded in the order they were made (the registry's order), or with
`order="closest"` the closest to the train outputs first (right shapes, then most cells right).

A candidate is a program whose train grids equal the train outputs exactly. Candidates rank by
length, then by the order they were found (the registry's order: deterministic), except that a
program ending in a lookup table of the demonstrations' pieces (a `lookup` primitive) ranks after
every other and does not end the search: the next level may still find a rule. The search keeps
the first `max_candidates` distinct test predictions and the best partial programs (every train
grid of the right shape, most cells right), which may fill an attempt no candidate fills.

The budget is counted in expanded states, so results do not depend on the machine or its load.
Memory is bounded twice: the next level keeps only as many states as the budget can still expand,
and `max_states` caps the digests kept for de-duplication. `max_seconds` is a wall-clock cap that
only ever shortens a search; a search stopped by a cap says which in `capped`. The search sees only the
task's train pairs and test inputs (pass `task.without_solutions()` or not: it never reads a test
output).
"""

from __future__ import annotations

import hashlib
import heapq
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from hybrid_pipeline.dsl.compose import Pieces, overlay_tests
from hybrid_pipeline.dsl.program import InColourRanks, Overlay, Program, Step
from hybrid_pipeline.dsl.registry import REGISTRY, Context, Grid, Primitive, checked
from hybrid_pipeline.dsl.views import ColourView

# The grids of one state: train inputs first, then test inputs.
State = tuple[Grid, ...]
# accept(test predictions) -> keep this candidate? (constraints learnt from a verifier's feedback)
Accept = Callable[[tuple[Grid, ...]], bool]
Steps = tuple[Step, ...]


@dataclass(frozen=True)
class SearchConfig:
    max_depth: int = 3  # enumerated steps, not counting one inferred last step
    max_expansions: int = 300  # states expanded (the budget; deterministic)
    max_states: int = 60_000  # distinct states kept (memory cap)
    max_seconds: float | None = 30.0  # wall-clock cap; a search that reaches it says so
    max_candidates: int = 4  # distinct test predictions kept
    max_partials: int = 3
    # When no single program fits: lay up to this many programs' grids over one another (0: never).
    max_overlay: int = 3
    # When nothing fits: states expanded in a second search of the task with every grid's colours
    # renamed by rank (`views`; 0: never).
    view_budget: int = 100
    # Which states of a level are expanded first: "closest" (to the train outputs: shapes, then
    # cells right) or "breadth" (the order they were made, i.e. the registry's order).
    order: str = "breadth"

    def __post_init__(self) -> None:
        if self.view_budget < 0:
            raise ValueError(f"the colour-view budget must be 0 or more expanded states, got {self.view_budget}")
        if self.max_expansions < 1:
            raise ValueError(f"the search budget must be at least 1 expanded state, got {self.max_expansions}")
        if self.max_depth < 1:
            raise ValueError(f"the search depth must be at least 1 step, got {self.max_depth}")
        if self.order not in ("closest", "breadth"):
            raise ValueError(f"the search order must be breadth or closest, got {self.order!r}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError("the search's wall-clock cap must be a positive number of seconds, "
                             f"got {self.max_seconds:g}")


@dataclass(frozen=True, eq=False)
class Candidate:
    """A program and what it does on the task.

    predictions: one grid per test input. fits: per train pair, whether the program reproduces its
    output exactly. cells_right: the share of train output cells it gets right (0 where a shape is
    wrong).
    """

    program: Program | Overlay | InColourRanks
    predictions: tuple[Grid, ...]
    fits: tuple[bool, ...]
    cells_right: float

    @property
    def fits_all(self) -> bool:
        return all(self.fits)

    def to_dict(self) -> dict:
        return {"program": self.program.to_python(), "expression": str(self.program),
                "fits": list(self.fits), "cells_right": round(self.cells_right, 4),
                "predictions": [p.tolist() for p in self.predictions]}


@dataclass
class SearchResult:
    candidates: list[Candidate] = field(default_factory=list)  # fit every pair; best first
    partials: list[Candidate] = field(default_factory=list)  # right shapes, most cells right first
    expanded: int = 0
    states: int = 0
    seconds: float = 0.0
    capped: str | None = None  # "seconds" or "states" when a cap, not the budget, ended it
    error: str | None = None  # why the task could not be searched at all

    def ranked(self) -> list[Candidate]:
        """Candidates, then partial programs whose predictions no candidate already makes."""
        out = list(self.candidates)
        for partial in self.partials:
            if not any(_same_grids(partial.predictions, c.predictions) for c in out):
                out.append(partial)
        return out


def _rank(program: Program | Overlay | InColourRanks) -> tuple[bool, int]:
    """How a fitting program ranks, least first: any that calls a lookup primitive after all the
    others, then the shorter."""
    lookup = any(REGISTRY[name].lookup for name in program.names() if name in REGISTRY)
    return lookup, len(program)


def _same_grids(a: Sequence[Grid], b: Sequence[Grid]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


def _key(state: State) -> bytes:
    """A 16-byte digest of every grid (shape and cells): states are kept by digest, not by content."""
    return hashlib.blake2b(b"|".join(bytes(g.shape) + g.tobytes() for g in state), digest_size=16).digest()


def _apply(fn, args: tuple, state: State) -> State | None:
    out = []
    for grid in state:
        try:
            result = checked(fn(grid, *args))
        except Exception:  # a primitive that does not apply (DSLError) or fails on this grid
            return None
        if result is None:
            return None
        out.append(result)
    return tuple(out)


class _Search:
    def __init__(self, train: Sequence[tuple[Grid, Grid]], tests: Sequence[Grid], config: SearchConfig,
                 accept: Accept | None):
        self.config = config
        self.targets = [np.asarray(o, dtype=np.uint8) for _, o in train]
        self.n_train = len(self.targets)
        self.root: State = tuple(np.asarray(g, dtype=np.uint8) for g in [*(i for i, _ in train), *tests])
        context = Context.from_pairs(self.root, self.targets)
        prims = list(REGISTRY.values())
        self.ops = [(p, args) for p in prims for args in p.arg_options(context)]
        # ops_at[d]: the operations allowed as step d + 1 of a program
        self.ops_at = [[(p, a) for p, a in self.ops if p.max_step is None or p.max_step > d]
                       for d in range(config.max_depth)]
        self.finishers: list[Primitive] = [p for p in prims if p.infer is not None]
        self.target_shapes = [t.shape for t in self.targets]
        self.result = SearchResult()
        self.accept = accept
        # (lookup, length, order found, candidate): see `_rank`
        self._candidates: list[tuple[bool, int, int, Candidate]] = []
        self._partial_scores: list[tuple[float, int, int, Candidate]] = []
        self._found = 0
        self.pieces = Pieces(self.targets)
        self.deadline: float | None = None  # perf_counter() time past which the search stops

    # -- checking a new state ---------------------------------------------------------------------
    def _shapes_match(self, state: State) -> bool:
        return all(g.shape == s for g, s in zip(state, self.target_shapes))

    def _consider(self, state: State, steps: Steps, shaped: bool) -> float:
        """Record a candidate or partial program; returns how close the state is to the train
        outputs: the share of pairs of the right shape, plus the share of cells right when all are.
        `shaped`: every train grid already has its output's shape."""
        if not shaped:
            return sum(g.shape == s for g, s in zip(state, self.target_shapes)) / self.n_train
        fits = tuple(np.array_equal(g, t) for g, t in zip(state, self.targets))
        if all(fits):
            self._add(Candidate(Program(steps), state[self.n_train:], fits, 1.0))
            return 2.0
        right = float(np.mean([np.mean(g == t) for g, t in zip(state, self.targets)]))
        self._partial(steps, state[self.n_train:], fits, right)
        if self.config.max_overlay > 1:
            self.pieces.add(steps, state[:self.n_train], state[self.n_train:], right)
        return 1.0 + right

    def _add(self, candidate: Candidate) -> None:
        self._found += 1
        if self.accept is not None and not self.accept(candidate.predictions):
            return
        rank = _rank(candidate.program)
        for i, (*kept_rank, _, kept) in enumerate(self._candidates):
            if _same_grids(candidate.predictions, kept.predictions):
                if rank < tuple(kept_rank):  # the simpler program explains it
                    self._candidates[i] = (*rank, self._found, candidate)
                return
        self._candidates.append((*rank, self._found, candidate))

    def _partial(self, steps: Steps, predictions: State, fits: tuple[bool, ...], right: float) -> None:
        self._found += 1
        # Highest share right first; among equals, the shorter then earlier program.
        rank = (-right, len(steps), self._found)
        scores = self._partial_scores
        if len(scores) >= self.config.max_partials and rank >= scores[-1][:3]:
            return
        if self.accept is not None and not self.accept(predictions):
            return
        if any(_same_grids(predictions, c.predictions) for *_, c in scores):
            return
        scores.append((*rank, Candidate(Program(steps), predictions, fits, right)))
        scores.sort(key=lambda e: e[:3])
        del scores[self.config.max_partials:]

    def _finish(self, state: State, steps: Steps, shaped: bool) -> None:
        """Try every inferred primitive as the last step of the program `steps`."""
        train = state[:self.n_train]
        for prim in self.finishers:
            if self.deadline is not None and time.perf_counter() > self.deadline:
                return  # the loop marks the search capped at its next check
            if (prim.keeps_shape and not shaped) or (prim.max_step is not None and len(steps) >= prim.max_step):
                continue
            try:
                args = prim.infer(train, self.targets)
            except Exception:
                args = None
            if args is None:
                continue
            child = _apply(prim.fn, tuple(args), state)
            if child is not None:
                self._consider(child, steps + (Step(prim.name, tuple(args)),), self._shapes_match(child))

    def overlays(self) -> list[Candidate]:
        """Candidates laid together from the pieces met (see `compose`), for when no program fits."""
        if self.config.max_overlay < 2:
            return []
        self._candidates = []
        for chosen in self.pieces.covers(self.config.max_overlay):
            program = Overlay(tuple(Program(p.steps) for p in chosen))
            self._add(Candidate(program, overlay_tests(chosen), (True,) * self.n_train, 1.0))
        return [c for *_, c in self._candidates]

    # -- the breadth-first loop -------------------------------------------------------------------
    def run(self) -> SearchResult:
        config, result = self.config, self.result
        started = time.perf_counter()
        deadline = self.deadline = None if config.max_seconds is None else started + config.max_seconds
        seen = {_key(self.root)}
        shaped = self._shapes_match(self.root)
        self._consider(self.root, (), shaped)
        self._finish(self.root, (), shaped)
        frontier: list[tuple[State, Steps]] = [(self.root, ())]
        order = 0
        for depth in range(config.max_depth):
            if result.capped or not frontier:
                break
            # The next level's states worth expanding: the closest to the outputs first (see
            # `SearchConfig.order`), at most as many as the budget can still expand. A min-heap of
            # (closeness, -order) drops the farthest, then the latest, when it is full.
            next_frontier: list[tuple[float, int, State, Steps]] = []
            for state, steps in frontier:
                if result.expanded >= config.max_expansions:
                    break
                if deadline is not None and time.perf_counter() > deadline:
                    result.capped = "seconds"
                    break
                result.expanded += 1
                for prim, args in self.ops_at[depth]:
                    if deadline is not None and time.perf_counter() > deadline:
                        result.capped = "seconds"
                        break
                    child = _apply(prim.fn, args, state)
                    if child is None:
                        continue
                    key = _key(child)
                    if key in seen:
                        continue
                    if len(seen) >= config.max_states:
                        result.capped = "states"
                        break
                    seen.add(key)
                    child_steps = steps + (Step(prim.name, args),)
                    shaped = self._shapes_match(child)
                    closeness = self._consider(child, child_steps, shaped)
                    if config.order != "closest":
                        closeness = 0.0  # the heap then keeps the earliest states
                    self._finish(child, child_steps, shaped)
                    order += 1
                    heapq.heappush(next_frontier, (closeness, -order, child, child_steps))
                    if len(next_frontier) > config.max_expansions - result.expanded:
                        heapq.heappop(next_frontier)
                if result.capped:
                    break
            # Deeper levels would only add longer programs than the rules already found.
            if any(not lookup for lookup, *_ in self._candidates):
                break
            frontier = [(state, steps) for _, _, state, steps in sorted(next_frontier, reverse=True)]
        result.states = len(seen)
        result.partials = [c for *_, c in self._partial_scores]
        result.candidates = [c for *_, c in sorted(self._candidates, key=lambda e: e[:3])][:config.max_candidates]
        result.seconds = time.perf_counter() - started
        return result


def search(task, config: SearchConfig | None = None, *, accept: Accept | None = None) -> SearchResult:
    """Search programs for `task` (an `arc.tasks.Task`); reads its train pairs and test inputs only.

    `accept`, when given, keeps only the candidates (and partial programs) whose test predictions it
    accepts, so the same budget goes on looking past the ones it rejects.
    """
    config = config or SearchConfig()
    train = [(ex.input, ex.output) for ex in task.train]
    tests = [ex.input for ex in task.test]
    if not train or any(o is None for _, o in train):
        return SearchResult(error="the task has no complete demonstration pair to search against")
    plain = _Search(train, tests, config, accept)
    result = plain.run()
    if result.candidates or result.capped == "seconds":
        return result
    # Nothing fits: programs on the colours-by-rank view first (one rule, simply put), then
    # outputs laid together from pieces.
    view = None if result.capped or config.view_budget == 0 else ColourView.of(train, tests)
    left = None if config.max_seconds is None else config.max_seconds - result.seconds
    if view is not None and (left is None or left > 0):
        _in_view(result, view, replace(config, max_expansions=config.view_budget, max_seconds=left), accept)
    result.candidates = (result.candidates + plain.overlays())[:config.max_candidates]
    return result


def _in_view(result: SearchResult, view: ColourView, config: SearchConfig, accept: Accept | None) -> None:
    """Add to `result` the programs a search of the colours-by-rank `view` finds, as programs that
    run in that view of each grid, with their predictions in the task's colours."""
    def accept_back(predictions: tuple[Grid, ...]) -> bool:
        back = view.back(predictions)
        return back is not None and (accept is None or accept(back))

    found = _Search(view.train, view.tests, config, accept_back).run()
    result.candidates = [Candidate(InColourRanks(c.program, view.fixed), view.back(c.predictions), c.fits,
                                   c.cells_right) for c in found.candidates]
    result.expanded += found.expanded
    result.states += found.states
    result.seconds += found.seconds
    result.capped = found.capped
