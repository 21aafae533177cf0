"""report.html: one static page that says how a plan run went and shows every task's answers.

From the top: warnings (random weights, an interrupted run); the per-task score as the headline with
the per-output score beside it and how often the right answer was among the candidates at all; what
ran (data, tasks, time, proposers and budgets, models, seed); an index of tasks marked solved,
partly solved, failed or error; then per task its demonstrations and, per test input, the two
submitted answers beside the expected output with the differing cells crossed out, and every
attempt with its program or model output, the TRM's confidence per supervision step where recorded,
and the verifier's checks of that answer (which were the feedback the later attempts saw).

Grids travel as short strings drawn by an inline script (`planner.report.grids`), so a 400-task
run's page is a few MB and fetches nothing: it opens from file:// and without a network. Without
JavaScript everything but the grid pictures still reads (each grid shows its shape).
"""

from __future__ import annotations

from html import escape
from typing import Any, Sequence

import numpy as np

from hybrid_pipeline.arc.scoring import grids_equal
from hybrid_pipeline.arc.tasks import Task, dataset_label
from planner.report.assets import ERRORS_SCRIPT, GRID_SCRIPT, STYLE
from planner.report.summary import index_html, scores_html, settings_html, task_status, warnings_html
from planner.report.tasks import task_html

__all__ = ["render_report", "task_status"]


def render_report(tasks: Sequence[Task], records: dict[str, dict[str, Any]], summary: dict[str, Any]) -> str:
    """The whole page for `tasks` (in order), their records by task id (a task without one shows as
    not run) and the run's summary (summary.json's content)."""
    statuses = {t.id: task_status(records.get(t.id)) for t in tasks}
    dataset, split = dataset_label(str(summary.get("data", "")))
    subtitle = escape(dataset) + (f" \u00b7 {escape(split)}" if split else "")
    head = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>hybrid-arc plan \u00b7 {subtitle}</title><script>{ERRORS_SCRIPT}</script>"
            f"<style>{STYLE}</style></head>")
    top = (f'<main id="top"><h2>hybrid-arc plan</h2><p class="sub">{subtitle}</p>'
           "<noscript><p class=\"warn\">JavaScript is off: the grids show only their shapes; everything else "
           "reads as usual.</p></noscript>"
           + warnings_html(summary) + scores_html(summary, expected_found(tasks, records))
           + settings_html(summary) + index_html(tasks, statuses))
    body = "".join(task_html(t, records.get(t.id), statuses[t.id]) for t in tasks)
    return f"{head}<body>{top}{body}</main><script>{GRID_SCRIPT}</script></body></html>"


def expected_found(tasks: Sequence[Task], records: dict[str, dict[str, Any]]) -> tuple[int, int] | None:
    """(test outputs whose expected grid some attempt proposed, test outputs scored); None when none is."""
    found = scored = 0
    for task in tasks:
        record = records.get(task.id)
        if record is None:
            continue
        for example, entry in zip(task.test, record["test"]):
            if example.output is None or entry.get("correct") is None:
                continue
            scored += 1
            expected = np.asarray(example.output)
            found += any(a["grid"] is not None and grids_equal(np.asarray(a["grid"]), expected)
                         for a in entry["attempts"])
    return (found, scored) if scored else None
