"""ARCPlanner: propose, verify, explain, retry; then choose the two answers to submit.

For each test input the planner asks its proposers in turn (round robin) for a candidate, up to
`attempts_per_input` times. The verifier checks each new candidate against what the task's
demonstrations imply and returns structured problems; the feedback formatter turns them into text
that every later attempt sees, with the earlier candidates. Identical candidates are merged (a
repeat is a vote, not a new check). It stops early once it has two distinct candidates with no
problem found, or when a whole round of proposers only repeated earlier candidates. The two answers are the best distinct candidates: programs that reproduce every demonstration
first, then by verifier score, then votes.

Consistency checks: a proposer that can also answer a task from any set of demonstrations (it has
`predict(train_pairs, test_input)`) is run once per test input on the train pairs with one left out
and on the task under dihedral transforms; the verifier compares those predictions with the known
train outputs and with each of that proposer's candidates. A proposer without `predict` (the TRM,
whose puzzle embedding has seen every train pair; a program, which the sandbox already runs on the
train pairs) gets the other checks only.

No peeking: the planner hands proposers and the verifier `task.without_solutions()` only, so a
run with or without the expected outputs makes the same attempts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from hybrid_pipeline.arc.scoring import grids_equal
from hybrid_pipeline.arc.tasks import Task
from planner.trace import Attempt, Proposal, TestInputResult
from verifier.verdict import Problem, Verdict


class Proposer(Protocol):
    """Anything that proposes an answer for one test input of a task, seeing the earlier attempts.

    It may also have `predict(train_pairs, test_input) -> grid | None`, which the consistency checks use.
    """

    name: str

    def propose(self, task: Task, test_index: int, history: Sequence[Attempt]) -> Proposal: ...


class Checker(Protocol):
    def check(self, task: Task, test_index: int, candidate, *, predictions=None) -> Verdict: ...

    def predictions(self, task: Task, test_index: int, predict: Callable): ...


class Formatter(Protocol):
    def to_text(self, problems: Sequence[Problem]) -> str: ...


@dataclass
class PlannerConfig:
    attempts_per_input: int = 4  # proposals per test input (the budget), over all proposers
    # Stop before the budget is spent once two distinct candidates pass every check, or once a whole
    # round of proposers only repeated earlier candidates.
    stop_early: bool = True
    # Run the leave-one-out and augmentation checks for proposers that have `predict` (costs about
    # train pairs + 3 extra predictions per test input and proposer).
    consistency_checks: bool = True

    def __post_init__(self) -> None:
        if self.attempts_per_input < 1:
            raise ValueError(f"attempts_per_input must be >= 1, got {self.attempts_per_input}")


class ARCPlanner:
    def __init__(self, proposers: Sequence[Proposer], verifier: Checker, formatter: Formatter,
                 config: PlannerConfig | None = None):
        if not proposers:
            raise ValueError("the planner needs at least one proposer")
        self.proposers = list(proposers)
        self.verifier = verifier
        self.formatter = formatter
        self.config = config or PlannerConfig()

    def solve(self, task: Task) -> list[TestInputResult]:
        """One result per test input, in order."""
        visible = task.without_solutions()
        return [self.solve_input(visible, i) for i in range(len(visible.test))]

    def solve_input(self, task: Task, test_index: int) -> TestInputResult:
        task = task.without_solutions()  # also when called directly
        result = TestInputResult()
        prediction_cache: dict[str, object] = {}  # proposer name -> its consistency predictions, made once
        for index in range(self.config.attempts_per_input):
            proposer = self.proposers[index % len(self.proposers)]
            started = time.perf_counter()
            try:
                proposal = proposer.propose(task, test_index, tuple(result.attempts))
            except Exception as e:  # a proposer's failure is a failed attempt, fed back like any other
                proposal = Proposal(None, error=f"{type(e).__name__}: {e}")
            seconds = time.perf_counter() - started
            result.attempts.append(self._judge(task, test_index, proposer, index, proposal, result.attempts,
                                               seconds, prediction_cache))
            if self.config.stop_early and self._done(result.attempts, index):
                break
        result.answers = choose_answers(result.attempts)
        return result

    def _done(self, attempts: Sequence[Attempt], index: int) -> bool:
        if len(_passing(attempts)) >= 2:
            return True
        round_over = (index + 1) % len(self.proposers) == 0
        # Every proposer repeated itself: more asking would only repeat again.
        return round_over and all(a.duplicate_of is not None for a in attempts[-len(self.proposers):])

    def _predictions(self, task: Task, test_index: int, proposer: Proposer, cache: dict[str, object]):
        """The proposer's consistency predictions for this test input (made on its first new candidate),
        or None when it cannot predict or the checks are off. A prediction that raises counts as none."""
        predict = getattr(proposer, "predict", None)
        if not self.config.consistency_checks or predict is None:
            return None
        if proposer.name not in cache:
            def safe_predict(pairs, test_input):
                try:
                    return predict(pairs, test_input)
                except Exception:
                    return None

            cache[proposer.name] = self.verifier.predictions(task, test_index, safe_predict)
        return cache[proposer.name]

    def _judge(self, task: Task, test_index: int, proposer: Proposer, index: int, proposal: Proposal,
               earlier: Sequence[Attempt], seconds: float, prediction_cache: dict[str, object]) -> Attempt:
        name = proposer.name
        if proposal.grid is None:
            problem = Problem("no_candidate", f"test {test_index}", expected="a grid",
                              got=None, detail=proposal.error or "the proposer returned nothing")
            verdict = Verdict(False, 0.0, (problem,))
            return Attempt(name, index, None, proposal.text, proposal.error, verdict,
                           self.formatter.to_text(verdict.problems), seconds, info=proposal.info)
        grid = np.asarray(proposal.grid, dtype=np.uint8)
        same = next((a for a in earlier if a.grid is not None and grids_equal(a.grid, grid)), None)
        if same is not None:  # a repeat: a vote for the earlier candidate; its checks still hold
            return Attempt(name, index, grid, proposal.text, proposal.error, same.verdict,
                           "same answer as attempt " + str(same.index + 1) + "; " + same.feedback,
                           seconds, duplicate_of=same.index, info=proposal.info)
        started = time.perf_counter()
        consistency = self._predictions(task, test_index, proposer, prediction_cache)
        predicted = time.perf_counter()
        verdict = self.verifier.check(task, test_index, grid, predictions=consistency)
        if proposal.problems or proposal.consistency < 1.0:
            verdict = Verdict(False, verdict.score * proposal.consistency,
                              tuple(proposal.problems) + tuple(verdict.problems))
        return Attempt(name, index, grid, proposal.text, proposal.error, verdict,
                       self.formatter.to_text(verdict.problems), seconds, predict_seconds=predicted - started,
                       check_seconds=time.perf_counter() - predicted, info=proposal.info)


def _passing(attempts: Sequence[Attempt]) -> list[Attempt]:
    return [a for a in attempts if a.grid is not None and a.duplicate_of is None and a.verdict.ok]


def choose_answers(attempts: Sequence[Attempt], k: int = 2) -> list[np.ndarray]:
    """The best `k` distinct candidates: those whose program reproduces every demonstration first
    (an exact fit on every pair is stronger evidence than the verifier's shape and palette rules,
    which are guesses from the same pairs), then verifier score, votes (repeats), the earlier one."""
    firsts = [a for a in attempts if a.grid is not None and a.duplicate_of is None]
    votes = {a.index: 1 + sum(b.duplicate_of == a.index for b in attempts) for a in firsts}
    ranked = sorted(firsts, key=lambda a: (not a.fits_train, -a.verdict.score, -votes[a.index], a.index))
    return [a.grid for a in ranked[:k]]
