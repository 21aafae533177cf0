"""report.html: what a reader of a plan run relies on. The scores in words, an index that marks each
task as its record says, answers compared cell by cell with the expected output, checks headed by
what they are about, no reason said twice, the random-weights warning exactly when it applies; and
a 400-task page that stays small and self-contained. (The page's script runs in a real browser in
experiments/check_report.py; nothing here needs one.)"""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import numpy as np
import pytest

from hybrid_pipeline.arc.scoring import is_solved
from hybrid_pipeline.arc.tasks import Example, Task
from planner.report import render_report
from planner.report.grids import comparison, encode_grid, grid_figure
from planner.report.summary import duration
from planner.trace import Attempt
from planner.trace import TestInputResult as InputResult
from verifier.feedback import HEADER, FeedbackFormatter
from verifier.verdict import Problem, Verdict

FORMATTER = FeedbackFormatter()
VOID = {"meta", "br", "img", "input", "hr", "link", "wbr"}
NO_CANDIDATE = "search: no further distinct program (0 fit every demonstration, 3 partial; 400 states expanded)"


class Page(HTMLParser):
    """Tags opened and closed (every element balanced), index links by class, attributes seen."""

    def __init__(self, html: str):
        super().__init__()
        self.stack: list[str] = []
        self.unbalanced: list[str] = []
        self.index: dict[str, str] = {}
        self.attributes: list[tuple[str, str | None]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.attributes += attrs
        attrs = dict(attrs)
        if tag == "a" and "t" in (attrs.get("class") or "").split():
            self.index[attrs["href"].lstrip("#")] = attrs["class"].split()[1]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.unbalanced.append(tag)


def attempt(index, grid, *, problems=(), proposer="search", text=None, error=None, duplicate_of=None, info=None):
    verdict = Verdict(not problems, 1.0 if not problems else 0.5, tuple(problems))
    grid = None if grid is None else np.asarray(grid, dtype=np.uint8)
    return Attempt(proposer, index, grid, text, error, verdict, FORMATTER.to_text(verdict.problems), 0.25,
                   duplicate_of=duplicate_of, info=info)


def record(task, attempts_per_input, *, status="ok", error=None, seconds=1.5):
    """A task's results.jsonl line as `hybrid-arc plan` writes it, from the planner's own trace types."""
    from planner.planner import choose_answers

    test = []
    for example, attempts in zip(task.test, attempts_per_input):
        result = InputResult(choose_answers(attempts), list(attempts))
        entry = result.to_dict()
        entry["correct"] = None if example.output is None else is_solved(result.answers, example.output)
        test.append(entry)
    return {"task_id": task.id, "status": status, "error": error, "seconds": seconds, "capped": None, "test": test}


def summary_of(tasks, records, **extra):
    from planner.run import summarize

    meta = {"proposers": ["search"], "backbone": "tiny-random", "backbone_kind": "causal", "trm": None,
            "hybrid": None, "attempts_per_input": 4, "consistency_checks": True, "seed": 0, "random_weights": [],
            "search": {"budget": 300, "depth": 3, "seconds_cap": 30.0, "feedback": True, "order": "breadth",
                       "view_budget": 100}, "data": "arc-agi-1:evaluation", **extra}
    return summarize(tasks, records, meta)


def grid(rows):
    return np.asarray(rows, dtype=np.uint8)


def small_task(task_id, outputs, inputs=None):
    inputs = inputs or [grid([[1, 2], [3, 4]])] * len(outputs)
    return Task(task_id, (Example(grid([[1, 1], [1, 1]]), grid([[2, 2], [2, 2]])),),
                tuple(Example(i, o) for i, o in zip(inputs, outputs)))


# --------------------------------------------------------------------------------------------------
# grids


def test_grids_encode_as_rows_of_digits_with_runs_as_letters():
    assert encode_grid([[0, 0, 0, 0], [1, 2, 2, 2]]) == "0d/12c"
    assert encode_grid([[5]]) == "5"
    assert encode_grid([[7, 3, 7]]) == "737"
    assert encode_grid(np.zeros((30, 30), dtype=np.uint8)) == "/".join(["0D"] * 30)  # 89 characters, not 900 cells
    assert encode_grid([[9] * 27 + [1, 1, 4]]) == "9A1b4"


def test_the_diff_marks_exactly_the_cells_that_differ_and_says_a_shape_mismatch_in_words():
    expected = grid([[1, 2, 3], [4, 5, 6]])
    cls, words, mask = comparison(grid([[1, 0, 3], [4, 5, 9]]), expected)
    assert (cls, words) == ("bad", "2 of 6 cells differ")
    assert mask.tolist() == [[False, True, False], [False, False, True]]
    html = grid_figure(grid([[1, 0, 3], [4, 5, 9]]), "attempt_1", expected=expected)
    assert 'data-x="010/0b1"' in html  # 00 is a run of two and "2 of 6 cells differ" in html

    assert comparison(expected.copy(), expected) == ("ok", "matches the expected output", None)
    wrong_shape = grid_figure(grid([[1, 2], [4, 5], [7, 8]]), "attempt_2", expected=expected)
    assert "shape 3x2, expected 2x3" in wrong_shape and "data-x" not in wrong_shape


def test_durations_read_as_a_person_would_say_them():
    assert [duration(s) for s in (3.24, 59.94, 221.165, 7300)] == ["3.2 s", "59.9 s", "3 min 41 s", "2 h 1 min"]


# --------------------------------------------------------------------------------------------------
# the page


@pytest.fixture
def four_tasks():
    """One task solved, one failed, one partly solved (two test inputs, one right) and one error."""
    right, other = grid([[3, 3], [3, 4]]), grid([[3, 3], [3, 3]])
    tasks = [small_task("solved01", [right]), small_task("failed02", [right]),
             small_task("partly03", [right, other]), small_task("error004", [right])]
    records = {
        "solved01": record(tasks[0], [[attempt(0, right)]]),
        "failed02": record(tasks[1], [[attempt(0, other, problems=[Problem("palette", "test 0", [3, 4], [3])])]]),
        "partly03": record(tasks[2], [[attempt(0, right)], [attempt(0, right)]]),
        "error004": record(tasks[3], [[]], status="error", error="timeout: the task took longer than 60 s"),
    }
    return tasks, records


def test_the_index_marks_each_task_exactly_as_its_record_says(four_tasks):
    tasks, records = four_tasks
    unrun = small_task("notrun05", [grid([[1]])])
    html = render_report([*tasks, unrun], records, summary_of(tasks, records))
    page = Page(html)
    assert page.index == {"solved01": "solved", "failed02": "failed", "partly03": "partly", "error004": "error",
                          "notrun05": "not-run"}
    for task_id, status in page.index.items():
        assert f'<section class="task {status}" id="{task_id}">' in html
    assert "timeout: the task took longer than 60 s" in html


def test_the_summary_reads_in_words_with_the_per_task_score_as_headline(four_tasks):
    tasks, records = four_tasks
    summary = summary_of(tasks, records)
    summary["seconds"] = 221.165
    html = render_report(tasks, records, summary)
    top = html[html.index("<main"):html.index('<nav class="index">')]
    # per task: 1 + 0 + 1/2 + 0 over 4 tasks; per output: 2 of 5 test outputs
    assert re.search(r'class="score headline"><div class="big">37\.5%</div><div class="label">per-task score', top)
    assert '<div class="big">40.0%</div><div class="label">per-output score' in top
    assert "2 of 5 test outputs solved" in top and "1 of 4 tasks solved" in top
    assert "arc-agi-1, evaluation split" in top and "3 min 41 s" in top
    assert "budget 300 states per task" in top and "<th>Seed</th><td>0</td>" in top
    for raw in ("None", "True", "False", "task_score", "0.3750"):
        assert raw not in top


def test_the_random_weights_warning_appears_exactly_when_the_run_used_random_weights(four_tasks):
    tasks, records = four_tasks
    warned = render_report(tasks, records, summary_of(tasks, records, random_weights=["hybrid proposer",
                                                                                     "trm proposer"]))
    assert "Random weights." in warned and "The hybrid proposer and trm proposer ran with randomly" in warned
    assert "Random weights" not in render_report(tasks, records, summary_of(tasks, records))


def test_an_interrupted_run_says_so_and_scores_only_its_finished_tasks(four_tasks):
    from planner.run import summarize

    tasks, records = four_tasks
    done = {t: records[t] for t in ("solved01", "failed02")}
    summary = summarize(tasks, done, {"data": "arc-agi-1:evaluation"}, interrupted=True)
    html = render_report(tasks, done, summary)
    assert "<b>Interrupted</b> after 2 of 4 tasks" in html
    assert '<div class="big">50.0%</div><div class="label">per-task score' in html
    assert Page(html).index == {"solved01": "solved", "failed02": "failed", "partly03": "not-run",
                                "error004": "not-run"}


def test_checks_are_headed_by_what_they_are_about_and_a_missing_answers_reason_appears_once():
    expected = grid([[1, 2], [3, 4]])
    task = small_task("heads001", [expected])
    shape = Problem("shape", "test 0", expected=[2, 2], got=[3, 3])
    first = attempt(0, np.ones((3, 3)), problems=[shape], text="def transform(grid):\n    return grid\n")
    second = attempt(1, None, error=NO_CANDIDATE,
                     problems=[Problem("no_candidate", "test 0", expected="a grid", detail=NO_CANDIDATE)])
    third = attempt(2, grid([[1, 2], [3, 0]]), problems=[Problem("palette", "test 0", [1, 2, 3, 4], [0, 1, 2, 3])])
    records = {task.id: record(task, [[first, second, third]])}
    html = render_report([task], records, summary_of([task], records))
    assert HEADER not in html  # "Problems with the previous answer:" headed an attempt's own checks
    assert "Checks of this answer \u2014 the feedback given to attempts 2 to 3</div><ul class=\"checks\"><li>shape " \
           "(test 0): expected 2x2, got 3x3</li>" in html
    assert "Checks of this answer</div><ul class=\"checks\"><li>palette (test 0)" in html  # the last: nobody after
    assert html.count(NO_CANDIDATE) == 1
    assert f'No answer: {NO_CANDIDATE}<span class="muted"> \u2014 the feedback given to attempt 3</span>' in html
    # The submitted answers carry their source and their difference from the expected output.
    assert "attempt_1 (attempt 1, search)" in html and "shape 3x3, expected 2x2" in html
    assert "attempt_2 (attempt 3, search)" in html and "1 of 4 cells differ" in html


def test_a_run_of_the_same_missing_answer_is_one_card_with_its_reason_once():
    task = small_task("missing1", [grid([[1]])])
    nothing = [Problem("no_candidate", "test 0", expected="a grid", detail=NO_CANDIDATE)]
    attempts = [attempt(0, grid([[2]]), problems=[Problem("palette", "test 0", [1], [2])]),
                *(attempt(k, None, error=NO_CANDIDATE, problems=nothing) for k in (1, 2, 3))]
    records = {task.id: record(task, [attempts])}
    html = render_report([task], records, summary_of([task], records))
    assert "<b>Attempts 2 to 4</b>" in html and "<b>Attempt 3</b>" not in html
    assert html.count(NO_CANDIDATE) == 1 and "No answer, each time: " in html


def test_a_repeated_answer_points_at_its_first_attempt_and_repeats_no_checks():
    expected = grid([[1, 2], [3, 4]])
    task = small_task("repeat01", [expected])
    palette = Problem("palette", "test 0", [1, 2, 3, 4], [1, 2, 3, 5])
    first = attempt(0, grid([[1, 2], [3, 5]]), problems=[palette])
    again = Attempt("search", 1, first.grid, None, None, first.verdict, "same answer as attempt 1; " + first.feedback,
                    0.1, duplicate_of=0)
    records = {task.id: record(task, [[first, again]])}
    html = render_report([task], records, summary_of([task], records))
    assert "Same answer as attempt 1: a vote for it; its checks hold." in html
    assert html.count("palette (test 0)") == 1


def test_the_trms_confidence_shows_per_supervision_step_where_the_record_has_it():
    task = small_task("conf0001", [grid([[1]])])
    info = {"q_halt_by_step": [-2.0, 0.0, 2.0]}
    records = {task.id: record(task, [[attempt(0, grid([[2]]), proposer="hybrid", text="2", info=info)]])}
    html = render_report([task], records, summary_of([task], records))
    assert "TRM confidence by supervision step" in html
    assert re.findall(r"<b>(\d+)%</b>", html) == ["12", "50", "88"]
    assert "Model output" in html  # the hybrid's text is what its LM wrote, not a program
    plain = {task.id: record(task, [[attempt(0, grid([[2]]))]])}
    assert "TRM confidence" not in render_report([task], plain, summary_of([task], plain))


def test_a_report_of_400_real_evaluation_tasks_stays_under_5_mb_parses_and_fetches_nothing(arc1_eval):
    """Each test input: 4 attempts of the expected output's shape with a few cells changed (one of
    them right for every third task), programs and feedback as the search writes them."""
    rng = np.random.default_rng(0)
    records = {}
    for n, task in enumerate(arc1_eval):
        per_input = []
        for i, example in enumerate(task.test):
            attempts = []
            for k in range(4):
                answer = example.output.copy()
                if not (n % 3 == 0 and k == 1):
                    cells = rng.random(answer.shape) < 0.1
                    answer[cells] = (answer[cells] + 1 + rng.integers(0, 8, int(cells.sum()))) % 10
                program = (f"from hybrid_pipeline.dsl import crop_region, recolor, tile\n\n\ndef transform(grid):\n"
                           f"    return recolor(crop_region(tile(grid, {k + 1}, 2), {i}, 0, 3, 3), {{1: {k}}})\n")
                problems = [Problem("program_mismatch", "train 0, 1", "every train output", "63.9% of train output cells right",
                                    "the program reproduces 0 of 2 train pairs"),
                            Problem("palette", f"test {i}", [0, 1, 2], [0, 1, 2, 5])]
                attempts.append(attempt(k, answer, problems=problems, text=program,
                                        info={"fits": [False] * len(task.train), "rank": k, "fitting_programs": 0,
                                              "expanded": 300}))
            per_input.append(attempts)
        records[task.id] = record(task, per_input, seconds=float(rng.random() * 3))
    started = time.perf_counter()
    html = render_report(arc1_eval, records, summary_of(arc1_eval, records))
    seconds = time.perf_counter() - started
    size = len(html.encode("utf-8"))
    assert size < 5 * 2**20, f"{size:,} bytes"
    assert seconds < 30
    page = Page(html)
    assert page.stack == [], page.stack[-5:]
    assert not page.unbalanced
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I)
    assert not [name for name, _ in page.attributes if name in ("src", "srcset", "poster", "data")]
    assert not [v for name, v in page.attributes if name == "href" and not (v or "").startswith("#")]
    assert sum(status == "solved" for status in page.index.values()) == sum(
        all(t["correct"] for t in r["test"]) for r in records.values())
    assert len(page.index) == 400


@pytest.mark.slow  # about 10 s: builds the untrained hybrid and generates an answer
def test_a_real_hybrid_attempt_records_the_trms_confidence_after_each_supervision_step_and_the_report_shows_it(
        tmp_path):
    from planner.build import UNTRAINED_HYBRID, PlanSetup, build_planner
    from planner.run import run_plan

    task = small_task("hybrid01", [grid([[2, 2], [2, 2]])])
    planner, meta = build_planner(PlanSetup(proposers=("hybrid",), attempts=1, consistency_checks=False))
    run = run_plan(planner, [task], tmp_path, meta={**meta, "data": "hand-made"}, progress=False)
    steps = run.records[0]["test"][0]["attempts"][0]["info"]["q_halt_by_step"]
    assert len(steps) == UNTRAINED_HYBRID["trm"]["halt_max_steps"] and all(np.isfinite(steps))
    html = (tmp_path / "report.html").read_text()
    assert "TRM confidence by supervision step" in html and html.count('<span class="step"') == len(steps)
    assert "Random weights." in html  # the untrained hybrid says so
