"""ARCPlanner and `run_plan` with the real verifier and feedback formatter on real bundled tasks.

Proposers here are scripted (a fixture that knows the answers, one that repeats itself, one that
raises): the planner's behaviour is what is under test, not a model's skill.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hybrid_pipeline.arc.scoring import read_submission
from hybrid_pipeline.arc.tasks import load_tasks
from planner.planner import ARCPlanner, PlannerConfig, choose_answers
from planner.proposers import TRMProposer, prompt_with_feedback
from hybrid_pipeline.runs import RunError
from planner.run import run_plan
from planner.trace import Attempt, Proposal
from verifier import FeedbackFormatter, GridVerifier, Verdict

TASK_IDS = ["3c9b0459", "6150a2bd", "67a3c6ac"]  # small ARC-AGI-1 training tasks, one test input each


@pytest.fixture(scope="module")
def tasks():
    return load_tasks("arc-agi-1:training", ids=TASK_IDS).raise_if_problems().tasks


class Scripted:
    """Proposes grids from a list in turn; records what it was shown."""

    def __init__(self, name, grids):
        self.name, self.grids, self.seen = name, list(grids), []

    def propose(self, task, test_index, history):
        self.seen.append((task, test_index, tuple(history)))
        grid = self.grids[min(len(self.seen) - 1, len(self.grids) - 1)]
        return Proposal(None if grid is None else np.asarray(grid, dtype=np.uint8))


class Oracle:
    """A test fixture that looks answers up (the library never does): right on every first try."""

    name = "oracle"

    def __init__(self, tasks):
        self.answers = {t.id: [ex.output for ex in t.test] for t in tasks}
        self.tasks_seen = []

    def propose(self, task, test_index, history):
        self.tasks_seen.append(task.id)
        return Proposal(self.answers[task.id][test_index])


def planner_with(*proposers, attempts=4, stop=True):
    return ARCPlanner(proposers, GridVerifier(), FeedbackFormatter(),
                      PlannerConfig(attempts_per_input=attempts, stop_early=stop))


def test_proposers_never_see_test_outputs_and_attempts_do_not_depend_on_them(tasks):
    def attempts(task, proposer):
        return [_no_time(x) for r in planner_with(proposer, attempts=3).solve(task) for x in r.attempts]

    scripted = Scripted("s", [[[1]], [[2, 2]]])
    assert attempts(tasks[0], scripted) == attempts(tasks[0].without_solutions(), Scripted("s", [[[1]], [[2, 2]]]))
    assert all(ex.output is None for task, _, _ in scripted.seen for ex in task.test)
    # A real model as proposer: the untrained TRM gives the same attempts with or without solutions.
    assert attempts(tasks[1], TRMProposer.untrained(max_augmentations=2)) == \
        attempts(tasks[1].without_solutions(), TRMProposer.untrained(max_augmentations=2))


def _no_time(attempt):
    d = attempt.to_dict()
    d.pop("seconds")
    d.pop("predict_seconds")
    d.pop("check_seconds")
    return d


def test_retries_see_earlier_attempts_with_the_verifiers_feedback(tasks):
    task = tasks[0]  # 3x3 -> 3x3: a 1x1 answer breaks the shape rule
    proposer = Scripted("s", [[[1]], [[2, 2, 2], [2, 2, 2], [2, 2, 2]]])
    result = planner_with(proposer, attempts=2).solve(task)[0]
    first = result.attempts[0]
    assert not first.verdict.ok and any(p.kind == "shape" for p in first.verdict.problems)
    assert "3x3" in first.feedback
    _, _, history = proposer.seen[1]
    assert history[0].feedback == first.feedback
    prompt = prompt_with_feedback(task.without_solutions(), 0, history)
    assert "Attempt 1:\n1\nFeedback: " + first.feedback in prompt
    assert prompt.endswith("Output:\n")


def test_repeats_are_votes_and_answers_rank_by_score_then_votes(tasks):
    good, other = [[1, 1, 1]] * 3, [[2, 2, 2]] * 3
    proposer = Scripted("s", [other, good, good, [[5]]])
    result = planner_with(proposer, attempts=4, stop=False).solve(tasks[0])[0]
    assert [a.duplicate_of for a in result.attempts] == [None, None, 1, None]
    # Both 3x3 grids pass the checks with score 1.0; `good` has two votes, so it comes first.
    assert [a.tolist() for a in result.answers] == [good, other]


def test_choose_answers_prefers_the_verifier_score():
    def attempt(i, grid, score, dup=None):
        return Attempt("p", i, np.asarray(grid, dtype=np.uint8), None, None, Verdict(score == 1, score), "", 0, dup)

    attempts = [attempt(0, [[1]], 0.5), attempt(1, [[2]], 0.9), attempt(2, [[1]], 0.5, dup=0), attempt(3, [[3]], 0.9)]
    assert [a.tolist() for a in choose_answers(attempts)] == [[[2]], [[3]]]


def test_stops_once_two_distinct_candidates_pass(tasks):
    proposer = Scripted("s", [[[1, 1, 1]] * 3, [[2, 2, 2]] * 3, [[3, 3, 3]] * 3])
    result = planner_with(proposer, attempts=6).solve(tasks[0])[0]
    assert len(result.attempts) == 2


def test_stops_when_every_proposer_only_repeats_itself(tasks):
    a, b = Scripted("a", [[[1]], [[1]]]), Scripted("b", [[[2]], [[1]]])
    result = planner_with(a, b, attempts=8).solve(tasks[0])[0]
    assert [x.duplicate_of for x in result.attempts] == [None, None, 0, 0]


class RuleProposer:
    """Applies one rule to grids: proposes rule(test input), then the fixed grids in `then`; `predict`
    answers any set of demonstrations with the same rule and counts its calls."""

    name = "rule"

    def __init__(self, rule, then=()):
        self.rule, self.then, self.predict_calls = rule, list(then), []

    def propose(self, task, test_index, history):
        grids = [self.rule(task.test[test_index].input), *map(np.asarray, self.then)]
        return Proposal(np.asarray(grids[min(len(history), len(grids) - 1)], dtype=np.uint8))

    def predict(self, pairs, test_input):
        self.predict_calls.append((len(pairs), test_input.shape))
        return self.rule(test_input)


def rotate180(grid):
    return np.rot90(grid, 2)


def test_consistency_checks_run_once_per_test_input_and_judge_each_candidate(tasks):
    task = tasks[0]  # 3c9b0459: the output is the input turned by 180 degrees
    wrong = [[1, 1, 1]] * 3
    proposer = RuleProposer(rotate180, then=[wrong])
    result = planner_with(proposer, attempts=3, stop=False).solve(task)[0]
    right, other, repeat = result.attempts
    assert right.verdict.ok and right.verdict.problems == ()  # the rule holds on every left-out pair
    assert repeat.duplicate_of == 1
    # the wrong candidate disagrees with the rule's prediction under each of the 3 augmentations
    assert [p.kind for p in other.verdict.problems] == ["augmentation"] * 3
    assert other.verdict.score < right.verdict.score
    # leave-one-out (one call per train pair, shown the others) + 3 augmentations, for all three attempts
    n = len(task.train)
    assert [k for k, _ in proposer.predict_calls] == [n - 1] * n + [n] * 3


def test_leave_one_out_names_the_train_pair_a_wrong_rule_misses(tasks):
    task = tasks[0]
    flip = RuleProposer(np.fliplr)  # agrees with the 180-degree turn only on pairs symmetric top-bottom
    verdict = planner_with(flip, attempts=1).solve(task)[0].attempts[0].verdict
    missed = [k for k, ex in enumerate(task.train) if not np.array_equal(np.fliplr(ex.input), ex.output)]
    loo = [p for p in verdict.problems if p.kind == "leave_one_out"]
    assert missed and [p.where for p in loo] == [f"train {k}" for k in missed]
    assert not verdict.ok
    unchecked = ARCPlanner([RuleProposer(np.fliplr)], GridVerifier(), FeedbackFormatter(),
                           PlannerConfig(attempts_per_input=1, consistency_checks=False))
    plain = unchecked.solve(task)[0].attempts[0].verdict
    assert unchecked.proposers[0].predict_calls == []
    assert not any(p.kind in ("leave_one_out", "augmentation") for p in plain.problems)
    assert plain.score > verdict.score


def test_a_predictor_that_raises_counts_as_no_prediction(tasks):
    class Raising(RuleProposer):
        def predict(self, pairs, test_input):
            raise RuntimeError("out of memory")

    attempt = planner_with(Raising(rotate180), attempts=1).solve(tasks[0])[0].attempts[0]
    assert attempt.grid is not None and attempt.error is None
    assert {p.kind for p in attempt.verdict.problems} == {"leave_one_out", "augmentation"}
    assert all(p.got is None or "shape" in p.got for p in attempt.verdict.problems)


def test_a_failing_proposer_is_a_failed_attempt_and_the_next_one_runs(tasks):
    class Broken:
        name = "broken"

        def propose(self, task, test_index, history):
            raise RuntimeError("model fell over")

    oracle = Oracle(tasks)
    result = planner_with(Broken(), oracle, attempts=2).solve(tasks[0])[0]
    assert result.attempts[0].error == "RuntimeError: model fell over"
    assert result.attempts[0].verdict.problems[0].kind == "no_candidate"
    assert np.array_equal(result.answers[0], tasks[0].test[0].output)


def test_run_plan_writes_every_file_and_scores_an_oracle_at_100(tasks, tmp_path):
    run = run_plan(planner_with(Oracle(tasks)), tasks, tmp_path, progress=False, meta={"data": "t"})
    assert run.summary["task_score"] == 1.0 and run.summary["output_score"] == 1.0
    assert run.summary["finished"] == 3 and run.summary["errors"] == 0
    submission = read_submission(tmp_path / "submission.json", tasks)
    assert sorted(submission) == sorted(TASK_IDS)
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in lines] == TASK_IDS and all(r["test"][0]["correct"] for r in lines)
    html = (tmp_path / "report.html").read_text()
    assert all(t in html for t in TASK_IDS) and "expected output" in html and "per-task score" in html


def test_resume_skips_finished_tasks_and_never_overwrites_by_accident(tasks, tmp_path):
    oracle = Oracle(tasks)
    run_plan(planner_with(oracle), tasks[:2], tmp_path, progress=False)
    with pytest.raises(RunError, match="--resume"):
        run_plan(planner_with(oracle), tasks, tmp_path, progress=False)
    oracle.tasks_seen.clear()
    run = run_plan(planner_with(oracle), tasks, tmp_path, resume=True, progress=False)
    assert set(oracle.tasks_seen) == {TASK_IDS[2]}  # only the unfinished task ran
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 3
    assert run.summary["task_score"] == 1.0


def test_a_task_that_fails_or_times_out_is_recorded_and_the_run_goes_on(tasks, tmp_path):
    import time

    class Picky:
        name = "picky"

        def propose(self, task, test_index, history):
            if task.id == TASK_IDS[0]:
                time.sleep(5)
            return Proposal(np.zeros((3, 3), dtype=np.uint8))

    class Exploding(ARCPlanner):
        def solve(self, task):
            if task.id == TASK_IDS[1]:
                raise ValueError("boom")
            return super().solve(task)

    planner = Exploding([Picky()], GridVerifier(), FeedbackFormatter())
    run = run_plan(planner, tasks, tmp_path, progress=False, task_timeout_s=0.5)
    records = {r["task_id"]: r for r in run.records}
    assert records[TASK_IDS[0]]["status"] == "error" and "timeout" in records[TASK_IDS[0]]["error"]
    assert records[TASK_IDS[1]]["error"] == "ValueError: boom"
    assert records[TASK_IDS[2]]["status"] == "ok"
    assert run.summary["errors"] == 2
    read_submission(tmp_path / "submission.json", tasks)  # placeholders keep it valid


def test_ctrl_c_leaves_valid_files_and_resume_finishes(tasks, tmp_path):
    class Interrupting(Oracle):
        def propose(self, task, test_index, history):
            if task.id == TASK_IDS[1]:
                raise KeyboardInterrupt
            return super().propose(task, test_index, history)

    with pytest.raises(KeyboardInterrupt):
        run_plan(planner_with(Interrupting(tasks)), tasks, tmp_path, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["finished"] == 1
    read_submission(tmp_path / "submission.json", tasks)
    run = run_plan(planner_with(Oracle(tasks)), tasks, tmp_path, resume=True, progress=False)
    assert run.summary["finished"] == 3 and run.summary["task_score"] == 1.0


def test_untrained_trm_proposer_runs_and_says_its_weights_are_random(tasks):
    proposer = TRMProposer.untrained(max_augmentations=2)
    assert proposer.random_weights
    result = planner_with(proposer, attempts=2).solve(tasks[0])[0]
    assert len(result.attempts) >= 1
    for attempt in result.attempts:
        assert attempt.grid is not None or attempt.error
