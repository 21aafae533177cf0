"""report.html: every task's demonstrations, test inputs, attempts (with verdicts and feedback) and,
when known, the expected output, drawn as coloured grids; a summary table on top. One static file."""

from __future__ import annotations

from html import escape
from typing import Any, Sequence

import numpy as np

from hybrid_pipeline.arc.tasks import Task

# The usual ARC palette, colour 0..9.
PALETTE = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
           "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25")

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table.summary td,table.summary th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}
.task{border-top:2px solid #444;margin-top:1.5em;padding-top:.5em}
.row{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start;margin:.4em 0}
.cell{display:inline-block;vertical-align:top;font-size:12px}
table.grid{border-collapse:collapse;margin-top:2px}
table.grid td{width:10px;height:10px;padding:0;border:1px solid #333}
.ok{color:#1a7f37}.bad{color:#c62828}.muted{color:#777}
pre{white-space:pre-wrap;font-size:12px;margin:2px 0;max-width:60em}
"""


def grid_html(grid: Any) -> str:
    if grid is None:
        return '<span class="muted">(none)</span>'
    rows = np.asarray(grid, dtype=np.uint8)
    body = "".join("<tr>" + "".join(f'<td style="background:{PALETTE[v]}"></td>' for v in row) + "</tr>"
                   for row in rows)
    return f'<table class="grid" title="{rows.shape[0]}x{rows.shape[1]}">{body}</table>'


def _figure(label: str, grid: Any) -> str:
    return f'<div class="cell">{escape(label)}<br>{grid_html(grid)}</div>'


def _attempt_html(attempt: dict[str, Any]) -> str:
    verdict = attempt["verdict"]
    status = ('<b class="ok">passes checks</b>' if verdict["ok"] else '<b class="bad">problems</b>')
    predictions = attempt.get("predict_seconds", 0.0)
    timing = f'{attempt["seconds"]:.2f} s' + (f' + {predictions:.2f} s predictions for the checks'
                                              if predictions >= 0.005 else "")
    parts = [f'attempt {attempt["index"] + 1} ({escape(attempt["proposer"])}, {timing}): '
             f'{status}, verifier score {verdict["score"]:.2f}']
    if attempt.get("duplicate_of") is not None:
        parts.append(f' <span class="muted">same as attempt {attempt["duplicate_of"] + 1}</span>')
    parts.append(_explanation_html(attempt))
    if attempt.get("error"):
        parts.append(f'<pre class="bad">{escape(attempt["error"])}</pre>')
    if attempt.get("feedback"):
        parts.append(f"<pre>{escape(attempt['feedback'])}</pre>")
    return f'<div class="cell">{"".join(parts)}{grid_html(attempt["grid"])}</div>'


def _explanation_html(attempt: dict[str, Any]) -> str:
    """The candidate's program (or the proposer's text) and which demonstrations it reproduces."""
    info = attempt.get("info") or {}
    html = []
    fits = info.get("fits")
    if fits:
        right = [str(i) for i, ok in enumerate(fits) if ok]
        cls = "ok" if len(right) == len(fits) else "bad"
        html.append(f'<br><span class="{cls}">reproduces {len(right)} of {len(fits)} demonstrations'
                    + (f' (train {", ".join(right)})' if right and len(right) < len(fits) else "") + "</span>")
    if info.get("capped"):
        html.append(f'<br><span class="bad">search stopped by its {escape(info["capped"])} cap</span>')
    if attempt.get("text"):
        html.append(f'<pre class="program">{escape(attempt["text"])}</pre>')
    return "".join(html)


def _task_html(task: Task, record: dict[str, Any] | None) -> str:
    head = f'<div class="task" id="{escape(task.id)}"><h3>{escape(task.id)}'
    if record is None:
        return head + ' <span class="muted">not run</span></h3></div>'
    if record["status"] == "error":
        head += f' <span class="bad">error: {escape(record["error"] or "")}</span>'
    html = [head + f' <span class="muted">{record["seconds"]:.1f} s</span></h3>']
    html.append('<div class="row">' + "".join(_figure(f"train {i} in", ex.input) + _figure("out", ex.output)
                                               for i, ex in enumerate(task.train)) + "</div>")
    for i, (example, entry) in enumerate(zip(task.test, record["test"])):
        correct = entry.get("correct")
        mark = "" if correct is None else (' <b class="ok">solved</b>' if correct else ' <b class="bad">not solved</b>')
        html.append(f"<h4>test {i}{mark}</h4>")
        figures = [_figure("input", example.input)]
        figures += [_figure(f"answer {k + 1}", a) for k, a in enumerate(entry["answers"])]
        if example.output is not None:
            figures.append(_figure("expected", example.output))
        html.append('<div class="row">' + "".join(figures) + "</div>")
        html.append('<div class="row">' + "".join(_attempt_html(a) for a in entry["attempts"]) + "</div>")
    return "".join(html) + "</div>"


def _summary_html(summary: dict[str, Any]) -> str:
    rows = [(k, v) for k, v in summary.items() if not isinstance(v, (dict, list))]
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f'<table class="summary">{body}</table>'


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_report(tasks: Sequence[Task], records: dict[str, dict[str, Any]], summary: dict[str, Any]) -> str:
    warning = ""
    if summary.get("random_weights"):
        warning = (f'<p class="bad"><b>Random weights:</b> {escape(", ".join(summary["random_weights"]))} '
                   "had randomly initialised weights in this run; its answers are noise.</p>")
    index = " ".join(f'<a href="#{escape(t.id)}">{escape(t.id)}</a>' for t in tasks)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>hybrid-arc plan report</title>"
            f"<style>{STYLE}</style></head><body><h2>hybrid-arc plan</h2>{warning}{_summary_html(summary)}"
            f"<p>{index}</p>" + "".join(_task_html(t, records.get(t.id)) for t in tasks) + "</body></html>")
