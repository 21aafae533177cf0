"""The top of the report: the warnings, the scores in words, what ran, and the index of tasks."""

from __future__ import annotations

from html import escape
from typing import Any, Sequence

from hybrid_pipeline.arc.tasks import Task, dataset_label

# A task's status in the index: (mark, words). "partly": some of its test inputs solved, not all.
STATUSES = {
    "solved": ("\u2713", "solved"),
    "partly": ("\u25d0", "partly solved"),
    "failed": ("\u2717", "failed"),
    "error": ("!", "error"),
    "unscored": ("?", "no expected output to score against"),
    "not-run": ("\u2013", "not run"),
}


def task_status(record: dict[str, Any] | None) -> str:
    """One of STATUSES, exactly as the record says (its status and each test input's `correct`)."""
    if record is None:
        return "not-run"
    if record["status"] == "error":
        return "error"
    correct = [t["correct"] for t in record["test"]]
    if any(c is None for c in correct):
        return "unscored"
    if all(correct):
        return "solved"
    return "partly" if any(correct) else "failed"


def duration(seconds: float) -> str:
    """3.2 -> "3.2 s"; 221.2 -> "3 min 41 s"; 7300 -> "2 h 1 min"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def warnings_html(summary: dict[str, Any]) -> str:
    html = []
    if summary.get("random_weights"):
        parts = summary["random_weights"]
        parts = " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)
        html.append(f'<p class="warn"><b>Random weights.</b> The {escape(parts)} ran with randomly initialised '
                    "weights: its answers are noise and its share of the score means nothing. This run checks "
                    "the pipeline; pass trained parts (--trm, --hybrid, --backbone) for real answers.</p>")
    if summary.get("interrupted"):
        html.append(f'<p class="warn"><b>Interrupted</b> after {summary["finished"]} of {summary["tasks"]} tasks: '
                    "the scores are over the finished tasks; rerun with --resume to finish.</p>")
    return "".join(html)


def scores_html(summary: dict[str, Any], found: tuple[int, int] | None) -> str:
    """The per-task score as the headline, the per-output score beside it, both labelled; `found`:
    (test outputs whose expected grid was among all the candidates, scored test outputs)."""
    dataset, split = dataset_label(str(summary.get("data", "")))
    where = escape(dataset) + (f" {escape(split)} split" if split else "")
    if "task_score" not in summary:
        return (f'<div class="scores"><p>Not scored: the tasks of {where} carry no expected outputs. '
                "The answers are in submission.json.</p></div>")
    solved_outputs = summary.get("solved_test_outputs")
    outputs = f"{solved_outputs} of {summary['test_inputs']} test outputs solved" if solved_outputs is not None \
        else f"of {summary['test_inputs']} test outputs"
    cards = [
        ("headline", percent(summary["task_score"]), "per-task score",
         f"{summary['solved_tasks']} of {summary['scored_tasks']} tasks solved; a task with several test inputs "
         "scores the fraction it solved"),
        ("", percent(summary["output_score"]), "per-output score", outputs),
    ]
    if found is not None:
        cards.append(("", f"{found[0]} of {found[1]}", "right answer among the candidates",
                      "test outputs whose expected grid any attempt proposed, chosen or not"))
    body = "".join(f'<div class="score {cls}"><div class="big">{value}</div><div class="label">{label}</div>'
                   f'<div class="muted">{escape(note)}</div></div>' for cls, value, label, note in cards)
    scope = "" if summary["scored_tasks"] == summary["tasks"] else f", over the {summary['scored_tasks']} finished tasks"
    return (f'<div class="scores">{body}</div><p class="muted">On {where}, {summary["tasks"]} tasks; 2 attempts per '
            f"test output (pass@2){scope}.</p>")


def settings_html(summary: dict[str, Any]) -> str:
    """What ran, in words: data, tasks, time, proposers and their budgets, models, seed."""
    dataset, split = dataset_label(str(summary.get("data", "")))
    rows = [("Data", f"{dataset}, {split} split" if split else dataset)]
    errors = summary.get("errors", 0)
    rows.append(("Tasks", f"{summary['finished']} of {summary['tasks']} finished"
                 + (f", {errors} with an error" if errors else "") + f"; {summary['test_inputs']} test inputs"))
    per_input = summary.get("attempts_per_input")
    rows.append(("Attempts", f"{summary['attempts']} in all" + (f", up to {per_input} per test input" if per_input else "")
                 + "; the two best distinct ones are submitted"))
    seconds = summary.get("seconds", 0.0)
    finished = summary["finished"]
    rows.append(("Time", duration(seconds) + " (sum over tasks)"
                 + (f", {duration(seconds / finished)} per task" if finished else "")))
    proposers = summary.get("proposers") or []
    rows.append(("Proposers", ", ".join(proposers) or "none recorded"))
    search = summary.get("search")
    if search:
        cap = search.get("seconds_cap")
        rows.append(("Program search", ", ".join([
            f"budget {search['budget']} states per task", f"depth {search['depth']}",
            f"{search['order']}-first",
            f"{search['view_budget']} more states for the colours-by-rank view" if search.get("view_budget") else
            "no colours-by-rank view",
            f"{cap:g} s cap per task" if cap else "no time cap",
            "steered by the verifier's feedback" if search.get("feedback") else "feedback not used"])))
    models = _models(summary, proposers)
    if models:
        rows.append(("Models", models))
    if "consistency_checks" in summary:
        rows.append(("Consistency checks", "on (leave-one-out and augmentations, for proposers that predict)"
                     if summary["consistency_checks"] else "off"))
    if "seed" in summary:
        rows.append(("Seed", str(summary["seed"])))
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="settings">{body}</table>'


def _models(summary: dict[str, Any], proposers: Sequence[str]) -> str:
    parts = []
    if {"hybrid", "llm", "program"} & set(proposers) and summary.get("backbone"):
        kind = summary.get("backbone_kind")
        parts.append(f"backbone {summary['backbone']}" + (f" ({kind})" if kind else ""))
    for name in ("trm", "hybrid"):
        if name in proposers:
            label = "TRM" if name == "trm" else "hybrid"
            parts.append(f"{label} from {summary[name]}" if summary.get(name) else f"{label} untrained")
    return "; ".join(parts)


def index_html(tasks: Sequence[Task], statuses: dict[str, str]) -> str:
    """Every task as a link to its section, marked with its status; counts and a filter on top."""
    counts = {s: sum(v == s for v in statuses.values()) for s in STATUSES}
    buttons = ['<button data-show="all" class="on">all ' + str(len(tasks)) + "</button>"]
    buttons += [f'<button data-show="{s}">{STATUSES[s][1]} {n}</button>' for s, n in counts.items() if n]
    links = "".join(f'<a class="t {statuses[t.id]}" href="#{escape(t.id)}" title="{STATUSES[statuses[t.id]][1]}">'
                    f"{STATUSES[statuses[t.id]][0]} {escape(t.id)}</a>" for t in tasks)
    return (f'<nav class="index"><h3>Tasks</h3><div class="filter">{"".join(buttons)}</div>'
            f'<div class="links">{links}</div></nav>')
