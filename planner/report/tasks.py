"""One task's section: its demonstrations, then per test input the two submitted answers beside the
expected output (differing cells marked), then every attempt the planner made with its program or
model output and the verifier's checks of it."""

from __future__ import annotations

import math
from html import escape
from typing import Any, Sequence

import numpy as np

from hybrid_pipeline.arc.scoring import ATTEMPT_KEYS, grids_equal
from hybrid_pipeline.arc.tasks import Example, Task
from planner.report.grids import grid_figure
from planner.report.summary import STATUSES, duration
from verifier.feedback import FeedbackFormatter
from verifier.verdict import Problem

# Proposers whose `text` is a program (the others' is what the model wrote).
PROGRAM_PROPOSERS = ("search", "program")
_LINES = FeedbackFormatter(max_line_chars=400)
SEPARATOR = " \u00b7 "


def task_html(task: Task, record: dict[str, Any] | None, status: str) -> str:
    mark, words = STATUSES[status]
    head = (f'<section class="task {status}" id="{escape(task.id)}"><h3>{escape(task.id)} '
            f'<span class="badge {status}">{mark} {words}</span>')
    if record is None:
        return head + "</h3></section>"
    head += f' <span class="muted">{duration(record["seconds"])}</span></h3>'
    html = [head]
    if record["status"] == "error":
        html.append(f'<p class="bad">The task stopped with an error: {escape(record["error"] or "(no message)")}</p>')
    if record.get("capped"):
        html.append(f'<p class="muted">The search stopped at its {escape(record["capped"])} cap here, so this '
                    "task's answers may differ on another machine.</p>")
    html.append(demonstrations_html(task.train))
    for i, (example, entry) in enumerate(zip(task.test, record["test"])):
        html.append(test_input_html(i, len(task.test), example, entry))
    return "".join(html) + '<p class="top"><a href="#top">back to the index</a></p></section>'


def demonstrations_html(train: Sequence[Example]) -> str:
    pairs = "".join(f'<div class="pair">{grid_figure(ex.input, f"demo {i + 1} input")}<span class="arrow">\u2192</span>'
                    f'{grid_figure(ex.output, "output")}</div>' for i, ex in enumerate(train))
    return f'<div class="demos"><h4>Demonstrations</h4><div class="row">{pairs}</div></div>'


def test_input_html(i: int, count: int, example: Example, entry: dict[str, Any]) -> str:
    expected = None if example.output is None else np.asarray(example.output)
    attempts = entry["attempts"]
    sources = [answer_source(answer, attempts) for answer in entry["answers"]]
    correct = entry.get("correct")
    title = f"Test input {i + 1} of {count}" if count > 1 else "Test input"
    mark = "" if correct is None else (' <span class="ok">solved</span>' if correct else ' <span class="bad">not solved</span>')
    figures = [grid_figure(example.input, "input")]
    for key, answer, source in zip(ATTEMPT_KEYS, entry["answers"], sources):
        origin = "" if source is None else f" (attempt {source + 1}, {attempts[source]['proposer']})"
        figures.append(grid_figure(answer, key + origin, expected=expected))
    if not entry["answers"]:
        figures.append('<figure class="fig"><div class="nogrid">no answer</div><figcaption>attempt_1, attempt_2'
                       "</figcaption></figure>")
    if expected is not None:
        figures.append(grid_figure(expected, "expected output"))
    html = [f'<div class="test"><h4>{title}{mark}</h4><div class="row answers">{"".join(figures)}</div>']
    if correct is False and expected is not None:
        found = next((a for a in attempts if a["grid"] is not None and grids_equal(np.asarray(a["grid"]), expected)), None)
        if found is not None:
            html.append(f'<p class="note">Attempt {found["index"] + 1} proposed the expected output, but two other '
                        "candidates ranked above it.</p>")
    if attempts:
        cards = "".join(attempt_html(group, len(attempts), sources, expected) for group in attempt_groups(attempts))
        html.append(f'<details class="attempts"{" open" if len(attempts) <= 4 else ""}><summary>'
                    f'{len(attempts)} attempt{"s" if len(attempts) != 1 else ""}</summary>{cards}</details>')
    return "".join(html) + "</div>"


def answer_source(answer: Any, attempts: Sequence[dict[str, Any]]) -> int | None:
    """Index of the first attempt that proposed `answer` (a submitted answer is always one of them)."""
    grid = np.asarray(answer)
    return next((a["index"] for a in attempts if a["grid"] is not None and a.get("duplicate_of") is None
                 and grids_equal(np.asarray(a["grid"]), grid)), None)


def same_missing_answer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Both attempts gave no grid, from the same proposer, for the same reason."""
    return (a["grid"] is None and b["grid"] is None and a["proposer"] == b["proposer"]
            and a.get("error") == b.get("error") and a["verdict"]["problems"] == b["verdict"]["problems"])


def attempt_groups(attempts: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The attempts in order, a run of the same missing answer as one group (said once, not N times)."""
    groups: list[list[dict[str, Any]]] = []
    for attempt in attempts:
        if groups and same_missing_answer(groups[-1][-1], attempt):
            groups[-1].append(attempt)
        else:
            groups.append([attempt])
    return groups


def attempt_html(group: Sequence[dict[str, Any]], count: int, sources: Sequence[int | None],
                 expected: np.ndarray | None) -> str:
    """One attempt's card (or one card for a run of the same missing answer); `count`: attempts in all."""
    attempt = group[0]
    k = attempt["index"]
    verdict = attempt["verdict"]
    chosen = [key for key, source in zip(ATTEMPT_KEYS, sources) if source == k]
    timing = duration(sum(a["seconds"] for a in group))
    checks_time = sum(a.get("predict_seconds", 0.0) + a.get("check_seconds", 0.0) for a in group)
    if checks_time >= 0.05:
        timing += f" + {duration(checks_time)} checking"
    name = f"Attempt {k + 1}" if len(group) == 1 else f"Attempts {k + 1} to {group[-1]['index'] + 1}"
    head = [f"<b>{name}</b>", escape(attempt["proposer"]), timing]
    if attempt["grid"] is not None and attempt.get("duplicate_of") is None:
        head.append('<span class="ok">passes the checks</span>' if verdict["ok"]
                    else f'<span class="bad">verifier score {verdict["score"]:.2f}</span>')
    if chosen:
        head.append(f'<b class="chosen">submitted as {" and ".join(chosen)}</b>')
    body = [f'<div class="ahead">{SEPARATOR.join(head)}</div><div class="abody">']
    duplicate = attempt.get("duplicate_of")
    if attempt["grid"] is None:
        reason = escape(attempt.get("error") or "the proposer returned nothing")
        told = feedback_label(k, count)
        body.append(f'<p class="bad">No answer{", each time" if len(group) > 1 else ""}: {reason}'
                    f'<span class="muted">{told}</span></p>')
    elif duplicate is not None:
        body.append(f'<p class="muted">Same answer as attempt {duplicate + 1}: a vote for it; its checks hold.</p>')
    elif not chosen:
        body.append(grid_figure(attempt["grid"], "answer", expected=expected))
    else:
        body.append(f'<p class="muted">Answer shown above as {" and ".join(chosen)}.</p>')
    if attempt["grid"] is not None and attempt.get("error"):
        body.append(f'<p class="bad">{escape(attempt["error"])}</p>')
    body.append('<div class="explain">' + explanation_html(attempt) + checks_html(attempt, count) + "</div>")
    return f'<div class="attempt{" picked" if chosen else ""}">{"".join(body)}</div></div>'


def feedback_label(k: int, count: int) -> str:
    """What attempt `k` (0-based) of `count` told the later ones: " — the feedback given to attempts 3 to 4"."""
    later = count - k - 1
    if later == 0:
        return ""
    return (f" \u2014 the feedback given to attempt {k + 2}" if later == 1
            else f" \u2014 the feedback given to attempts {k + 2} to {count}")


def explanation_html(attempt: dict[str, Any]) -> str:
    """The candidate's program or the model's output, and what the proposer says about it."""
    info = attempt.get("info") or {}
    html = []
    fits = info.get("fits")
    # A partial program's mismatch is one of the checks below: said there, not twice.
    if fits and not any(p["kind"] == "program_mismatch" for p in attempt["verdict"]["problems"]):
        right = [str(i + 1) for i, ok in enumerate(fits) if ok]
        cls = "ok" if len(right) == len(fits) else "bad"
        which = f" (demo {', '.join(right)})" if right and len(right) < len(fits) else ""
        html.append(f'<p class="{cls}">The program reproduces {len(right)} of {len(fits)} demonstrations{which}.</p>')
    if info.get("rank") is not None and info.get("fitting_programs") is not None:
        html.append(f'<p class="muted">Search rank {info["rank"] + 1}; {info["fitting_programs"]} programs fit every '
                    f'demonstration; {info.get("expanded", "?")} states expanded'
                    + ("; steered by feedback" if info.get("feedback_steered") else "") + ".</p>")
    if info.get("capped"):
        html.append(f'<p class="bad">The search stopped at its {escape(str(info["capped"]))} cap.</p>')
    html.append(confidence_html(info))
    if attempt.get("text"):
        label = "Program" if attempt["proposer"] in PROGRAM_PROPOSERS else "Model output"
        html.append(f'<div class="label">{label}</div><pre>{escape(attempt["text"].rstrip())}</pre>')
    return "".join(html)


def confidence_html(info: dict[str, Any]) -> str:
    """The TRM's halting confidence (sigmoid of its q_halt logit) after each supervision step, when
    the proposer recorded it (`info["q_halt_by_step"]`), and the votes behind a voted candidate."""
    html = []
    steps = info.get("q_halt_by_step")
    if steps:
        cells = "".join(f'<span class="step" title="step {s + 1}: q_halt logit {q:+.2f}">'
                        f'<span class="bar"><i style="height:{round(100 * _sigmoid(q))}%"></i></span><b>{100 * _sigmoid(q):.0f}%</b></span>'
                        for s, q in enumerate(steps))
        html.append(f'<div class="label">TRM confidence by supervision step</div><div class="steps">{cells}</div>')
    if info.get("votes") is not None:
        html.append(f'<p class="muted">{info["votes"]} votes over the augmentations.</p>')
    return "".join(html)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 60.0), -60.0)))


def checks_html(attempt: dict[str, Any], count: int) -> str:
    """The verifier's problems with this attempt's own answer, each once, labelled as the feedback the
    later attempts were given. A missing answer's reason is said with it: not repeated here."""
    if attempt.get("duplicate_of") is not None:
        return ""
    problems = [Problem.from_dict(p) for p in attempt["verdict"]["problems"]]
    if attempt["grid"] is None:
        said = attempt.get("error") or "the proposer returned nothing"
        problems = [p for p in problems if not (p.kind == "no_candidate" and p.detail == said)]
        if not problems:
            return ""
    told = feedback_label(attempt["index"], count)
    if not problems:
        return f'<div class="label">Checks of this answer{told}</div><p class="ok">No problem found.</p>'
    items = "".join(f"<li>{escape(_LINES.line(p)[2:])}</li>" for p in problems)
    return f'<div class="label">Checks of this answer{told}</div><ul class="checks">{items}</ul>'
