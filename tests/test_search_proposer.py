"""The search proposer in the planner and in `hybrid-arc plan`: ranking, retries, feedback,
explained answers, the offline default, parallel workers, and every bundled split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hybrid_pipeline.arc.tasks import Example, Task, load_tasks
from hybrid_pipeline.cli import main
from hybrid_pipeline.dsl.search import SearchConfig, search
from planner.build import PlanSetup, build_planner, default_proposers
from planner.proposers import SearchProposer
from planner.trace import Attempt
from verifier.verdict import Problem, Verdict


def _grid(rows):
    return np.array(rows, dtype=np.uint8)


# Flip left-right and recolour 1 -> 5; the search finds several programs that fit both pairs.
TASK = Task("hand", (Example(_grid([[1, 0, 0], [2, 2, 0]]), _grid([[0, 0, 5], [0, 2, 2]])),
                     Example(_grid([[0, 1], [3, 0]]), _grid([[5, 0], [0, 3]]))),
            (Example(_grid([[1, 2, 0]]), _grid([[0, 2, 5]])),))
CONFIG = SearchConfig(max_expansions=200, max_seconds=None)


def _planner(attempts=4, feedback=True):
    setup = PlanSetup(proposers=("search",), attempts=attempts, search_budget=CONFIG.max_expansions,
                      search_seconds=None, search_feedback=feedback)
    return build_planner(setup)[0]


def test_with_search_alone_the_two_answers_follow_the_search_ranking():
    ranked = search(TASK.without_solutions(), CONFIG).ranked()
    assert len(ranked) >= 2
    result = _planner().solve(TASK)[0]
    for answer, candidate in zip(result.answers, ranked[:2]):
        np.testing.assert_array_equal(answer, candidate.predictions[0])
    np.testing.assert_array_equal(result.answers[0], TASK.test[0].output)


def test_each_retry_takes_the_next_distinct_prediction_and_explains_it():
    ranked = search(TASK.without_solutions(), CONFIG).ranked()
    result = _planner(attempts=3, feedback=False)
    attempts = result.solve(TASK)[0].attempts
    assert [a.info["expression"] for a in attempts] == [str(c.program) for c in ranked[:len(attempts)]]
    grids = [a.grid.tobytes() + bytes(a.grid.shape) for a in attempts]
    assert len(set(grids)) == len(grids)
    first = attempts[0]
    assert first.text.startswith("from hybrid_pipeline.dsl import") and "def transform(grid):" in first.text
    assert first.info["fits"] == [True, True] and first.fits_train


def _attempt_with(problem: Problem, grid) -> Attempt:
    return Attempt("search", 0, _grid(grid), None, None, Verdict(False, 0.5, (problem,)), "", 0.0)


def test_a_shape_problem_steers_the_next_round_to_the_allowed_shapes():
    task = TASK.without_solutions()
    proposer = SearchProposer(CONFIG)
    shape = Problem("shape", "test 0", expected=[[2, 2]], got=[1, 3])
    proposal = proposer.propose(task, 0, (_attempt_with(shape, [[0, 2, 5]]),))
    assert proposal.grid is None or proposal.grid.shape == (2, 2)
    assert proposal.info["feedback_steered"]

    unsteered = SearchProposer(CONFIG, use_feedback=False).propose(task, 0, (_attempt_with(shape, [[0, 2, 5]]),))
    assert unsteered.grid.shape == (1, 3) and not unsteered.info["feedback_steered"]


def test_a_palette_problem_keeps_only_programs_within_the_allowed_colours():
    task = TASK.without_solutions()
    palette = Problem("palette", "test 0", expected=[0, 1, 2], got=[5])
    proposal = SearchProposer(CONFIG).propose(task, 0, (_attempt_with(palette, [[0, 2, 5]]),))
    assert proposal.grid is None or set(np.unique(proposal.grid).tolist()) <= {0, 1, 2}


def test_search_is_the_default_and_trained_parts_bring_their_proposers_in():
    assert PlanSetup().proposers == ("search",)
    assert default_proposers(PlanSetup(proposers=("search",), trm="runs/t", hybrid="runs/h")) == ("search", "hybrid", "trm")
    assert PlanSetup(backbone="some/model").proposers == ("search", "llm")
    assert PlanSetup(proposers=("trm",)).proposers == ("trm",)


# ARC-AGI-1 training: a colour map and a flip (solved) and a task the small budget does not solve.
PLAN_TASKS = "0d3d703e,68b16354,045e512c"


def _plan(tmp_path, name, *extra):
    out = tmp_path / name
    code = main(["plan", "--data", "arc-agi-1:training", "--tasks", PLAN_TASKS, "--search-budget", "40",
                 "--out", str(out), "--quiet", *extra])
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return code, out, records


def test_plan_solves_real_tasks_offline_by_default_and_shows_each_program(tmp_path, capsys):
    code, out, records = _plan(tmp_path, "run")
    assert code == 0
    printed = capsys.readouterr().out
    assert "random weights" not in printed and "2 of 3 tasks solved" in printed
    assert {r["task_id"]: r["test"][0]["correct"] for r in records} == {
        "0d3d703e": True, "68b16354": True, "045e512c": False}
    first = next(r for r in records if r["task_id"] == "0d3d703e")["test"][0]["attempts"][0]
    assert first["proposer"] == "search" and "def transform(grid):" in first["text"]
    assert first["info"]["fits"] and all(first["info"]["fits"])
    report = (out / "report.html").read_text()
    assert "def transform(grid):" in report and "reproduces" in report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["proposers"] == ["search"] and summary["search"]["budget"] == 40


def test_two_workers_give_the_same_results_as_one(tmp_path):
    def comparable(records):
        for r in records:
            r.pop("seconds")
            for t in r["test"]:
                for a in t["attempts"]:
                    for key in ("seconds", "predict_seconds", "check_seconds"):
                        a.pop(key)
                    a["info"].pop("search_seconds", None)
        return records

    _, _, one = _plan(tmp_path, "one")
    _, _, two = _plan(tmp_path, "two", "--workers", "2")
    assert comparable(one) == comparable(two)


@pytest.mark.parametrize("flags, word", [(["--search-budget", "0"], "budget"), (["--search-budget", "-1"], "budget"),
                                         (["--search-view-budget", "-1"], "colour-view budget"),
                                         (["--proposers", "search,oracle"], "oracle"), (["--workers", "0"], "workers")])
def test_bad_search_settings_exit_2_with_one_line(tmp_path, capsys, flags, word):
    assert main(["plan", "--data", "arc-agi-1:training", "--tasks", "0d3d703e", "--out", str(tmp_path / "x"),
                 "--quiet", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and word in err[0]


SPLITS = ("arc-agi-1:training", "arc-agi-1:evaluation", "arc-agi-2:training", "arc-agi-2:evaluation")


def _search_every(tasks, config):
    for task in tasks:
        result = search(task.without_solutions(), config)
        assert result.error is None, task.id
        assert result.expanded <= config.max_expansions + config.view_budget
        for candidate in result.ranked():
            assert len(candidate.predictions) == len(task.test)


def test_a_sample_of_every_bundled_split_searches_without_a_crash():
    tiny = SearchConfig(max_expansions=2, max_depth=2, max_seconds=5.0, view_budget=2)
    for split in SPLITS:
        _search_every(load_tasks(split).tasks[::10], tiny)


@pytest.mark.slow
def test_every_bundled_task_searches_without_a_crash():
    tiny = SearchConfig(max_expansions=2, max_depth=2, max_seconds=10.0, view_budget=2)
    for split in SPLITS:
        _search_every(load_tasks(split).tasks, tiny)


def test_plan_flags_default_to_the_search_settings():
    from hybrid_pipeline.cli import build_parser
    from planner.build import PlanSetup

    args = build_parser().parse_args(["plan", "--data", "arc-agi-1:training", "--out", "x"])
    setup, config = PlanSetup(), SearchConfig()
    assert (args.search_budget, args.search_depth, args.search_seconds, args.search_order, args.search_view_budget) \
        == (setup.search_budget, setup.search_depth, setup.search_seconds, setup.search_order,
            setup.search_view_budget) \
        == (config.max_expansions, config.max_depth, config.max_seconds, config.order, config.view_budget)
