"""LLM-only baseline: a frozen language model answers ARC tasks from a few-shot prompt.

For each test input the model reads the task as text (every demonstration pair, then the test
input: `arc.text.task_to_prompt`) and writes `attempts` answers, the first greedy and the rest
sampled. With `augment=K` it does the same under K random augmentations of the task as well
(dihedral transform and colour permutation, the original task first); every answer that parses is
mapped back by the inverse augmentation and voted, and the two candidates with the most votes
become attempt_1 and attempt_2. Ties keep the order of generation, so without augmentation the
attempts are the greedy answer, then the first different sampled one. An answer that does not
parse is a failed attempt, recorded with the parser's reason.

With `ttt.steps` N > 0 (`--ttt-steps N`), every task is answered by the model with a LoRA adapter
trained for N steps on that task's demonstrations alone, removed again before the next task
(`hybrid_pipeline.backbones.ttt`); its losses and time go into the task's results line.

The model is anything with `generate_answers` (`hybrid_pipeline.backbones.answer.AnswerModel`):
`BackboneAnswerModel` there wraps a causal or diffusion backbone, tests plug in scripted models. The
solver sees the task without its test outputs (`arc.views`); they are read only after a task's
attempts are made, to score it.

Files in `out_dir` (docs/runs.md):
- `results.jsonl`: one line per task, appended as it finishes (attempts, vote counts, parse failures
  with reasons, correctness when solutions are known, tokens generated, seconds);
- `submission.json`: Kaggle format for every selected task, rewritten atomically after each task
  (placeholder grids where there is no prediction yet);
- `summary.json`: at the end, and on Ctrl-C or SIGTERM with `"interrupted": true` (`runs.finish_run`:
  a signal lets the task's writes finish, then stops the run): scores, throughput, settings;
- `run.json`: the settings and versions, so that `resume` refuses to mix results made with other
  settings (`hybrid_pipeline.runs`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

from hybrid_pipeline.arc.files import append_jsonl, atomic_write_json
from hybrid_pipeline.arc.scoring import is_solved, score_submission, write_submission
from hybrid_pipeline.arc.tasks import Task, dataset_label, load_tasks
from hybrid_pipeline.arc.text import AnswerParseError, parse_grid, task_to_prompt
from hybrid_pipeline.arc.views import View, plan_views, predict_under_views, stable_int, task_augmentations
from hybrid_pipeline.arc.voting import Candidate, rank_of
from hybrid_pipeline.arc.wording import plural
from hybrid_pipeline.backbones.answer import MAX_ANSWER_TOKENS, AnswerModel, adapted, load_answer_model
from hybrid_pipeline.backbones.config import BackboneConfig, resolve_dtype
from hybrid_pipeline.backbones.ttt import TTTConfig
from hybrid_pipeline.config import config_from_dict, config_to_dict
from hybrid_pipeline.runs import finish_run, kept_records, open_run, warn_random_weights

RESULTS, SUBMISSION, SUMMARY = "results.jsonl", "submission.json", "summary.json"
# Settings that change what a run predicts: a resumed run must match them.
RESUME_KEYS = ("data", "backbone", "attempts", "augment", "temperature", "max_new_tokens",
               "constrain_to_grid", "diffusion_block_length", "diffusion_steps_per_block", "seed", "ttt")
# Settings added since older runs were recorded, with the value those runs ran with: no test-time training
# (the command line seeds it with the run's own seed).
IMPLIED_BY_OLDER_RUNS = {"ttt": lambda saved: json.loads(json.dumps(config_to_dict(TTTConfig(seed=saved.get("seed", 0)))))}


class BaselineError(ValueError):
    """A baseline run that cannot start as configured; the message is one line saying what to change."""


@dataclass
class BaselineConfig:
    data: str = "arc-agi-1:evaluation"       # a data spec (docs/data.md)
    out_dir: str = "runs/baseline"
    tasks: tuple[str, ...] | None = None      # ids / glob patterns selecting from `data`
    limit: int | None = None
    backbone: BackboneConfig = field(default_factory=BackboneConfig)  # name, kind, dtype, quantisation
    attempts: int = 2                         # answers per prompt: the first greedy, the rest sampled
    augment: int = 0                          # random augmentations voted besides the original task
    temperature: float = 0.7                  # for the sampled answers; 0 repeats the greedy one
    max_new_tokens: int | None = None         # None: MAX_ANSWER_TOKENS, enough for a 30x30 grid
    constrain_to_grid: bool = True            # allow only digits, newline and EOS
    reuse_prompt_cache: bool = True           # causal: encode the prompt once for all its answers
    diffusion_block_length: int = 32
    diffusion_steps_per_block: int = 16       # 2 tokens committed per step at block length 32
    seed: int = 0
    ttt: TTTConfig = field(default_factory=TTTConfig)  # test-time training per task; steps 0: none
    resume: bool = False                      # skip tasks already in results.jsonl
    overwrite: bool = False                   # replace the run in out_dir

    def __post_init__(self) -> None:
        for key in ("attempts", "diffusion_block_length", "diffusion_steps_per_block"):
            if getattr(self, key) < 1:
                raise BaselineError(f"{key} must be >= 1, got {getattr(self, key)}")
        for key in ("augment", "seed"):
            if getattr(self, key) < 0:
                raise BaselineError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.limit is not None and self.limit < 1:
            raise BaselineError(f"limit must be >= 1, got {self.limit}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise BaselineError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise BaselineError(f"temperature must be >= 0, got {self.temperature}")
        if self.backbone.dtype != "auto":
            try:  # checked now: the loader would raise a plain ValueError once the run has started
                resolve_dtype(self.backbone.dtype)
            except ValueError as e:
                raise BaselineError(f"backbone dtype: {e}") from None
        if isinstance(self.tasks, str):
            self.tasks = tuple(t for t in self.tasks.split(",") if t)
        elif self.tasks is not None:
            self.tasks = tuple(self.tasks)

    @property
    def answer_tokens(self) -> int:
        return self.max_new_tokens or MAX_ANSWER_TOKENS


# --------------------------------------------------------------------------------------------------
# Predicting one task


@dataclass
class Prediction:
    """The outcome for one test input: at most 2 attempts, best first, and how they came about."""

    attempts: list[np.ndarray]
    candidates: list[Candidate]  # every distinct parsed answer in the original frame, ranked
    answers: int                 # answers generated, parsed or not
    parse_failures: list[dict[str, Any]] = field(default_factory=list)  # view, sample, reason


def predict_task(model: AnswerModel, task: Task, config: BaselineConfig) -> list[Prediction]:
    """Attempts for every test input of `task`. Reads no test output: the views are of the stripped task.

    The views are `task_augmentations(task.id, config.augment + 1, config.seed)`; the answers to view
    v of test input i are sampled from seed `stable_int(f"{seed}/{task id}/{i}/{v}")`, so a resumed
    run, or another `limit`, asks every prompt the same way. The model answers as it is: `run_baseline`
    puts the task's test-time adapter on it first (`backbones.answer.adapted`).
    """
    views = plan_views([task], lambda t: task_augmentations(t.id, config.augment + 1, config.seed))
    answers = [0] * len(task.test)
    failures: list[list[dict[str, Any]]] = [[] for _ in task.test]

    def answer(batch: Sequence[View]) -> list[list[tuple[np.ndarray, float]]]:
        guesses = []
        for view in batch:
            i = view.test_index
            texts = model.generate_answers(task_to_prompt(view.task, i), config.attempts,
                                           temperature=config.temperature, max_new_tokens=config.answer_tokens,
                                           seed=stable_int(f"{config.seed}/{task.id}/{i}/{view.number}"))
            answers[i] += len(texts)
            parsed = []
            for k, text in enumerate(texts):
                try:
                    parsed.append((parse_grid(text), 0.0))
                except AnswerParseError as e:
                    failures[i].append({"view": view.augmentation.name, "sample": k, "reason": str(e)})
            guesses.append(parsed)
        return guesses

    box = predict_under_views(views, answer)
    predictions = []
    for i in range(len(task.test)):
        ranked = box.ranked(task.id, i)
        predictions.append(Prediction([c.grid for c in ranked[:2]], ranked, answers[i], failures[i]))
    return predictions


def task_record(task: Task, predictions: list[Prediction], tokens: int, seconds: float) -> dict[str, Any]:
    """The results.jsonl line of a task; scored against the test outputs when the task has them."""
    tests = []
    for i, p in enumerate(predictions):
        entry: dict[str, Any] = {"attempts": [g.tolist() for g in p.attempts],
                                 "votes": [c.votes for c in p.candidates], "answers": p.answers,
                                 "parse_failures": p.parse_failures}
        if task.has_solutions:
            expected = task.test[i].output
            entry["correct"] = is_solved(p.attempts, expected)
            entry["rank_of_expected"] = rank_of(p.candidates, expected)
        tests.append(entry)
    record: dict[str, Any] = {"task_id": task.id, "test": tests}
    if task.has_solutions:
        record["score"] = sum(t["correct"] for t in tests) / len(tests)
    record.update(tokens_generated=int(tokens), seconds=round(seconds, 4))
    return record


# --------------------------------------------------------------------------------------------------
# The run


def run_baseline(config: BaselineConfig, *, tasks: Sequence[Task] | None = None, model: AnswerModel | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Run the baseline over `tasks` (default: those `config.data`, `config.tasks` and `config.limit`
    select) and write the files in `config.out_dir`; returns the summary.

    A signal (Ctrl-C, SIGTERM) lets the task's appended line and submission finish, writes the
    summary marked interrupted and is raised again (`runs.finish_run`).
    User errors, raised before any task runs: ARCDataError (data spec, task files, a corrupt
    results.jsonl), BackboneLoadError (the backbone, or a tokenizer that cannot be constrained to the
    grid alphabet), BaselineError (settings), RunError (out_dir conflicts: results there without
    resume, a resume with other settings).
    """
    from tqdm.auto import tqdm

    if tasks is None:
        ids = list(config.tasks) if config.tasks else None
        tasks = load_tasks(config.data, ids=ids, limit=config.limit).raise_if_problems().tasks
    out = Path(config.out_dir)
    continuing = open_run(out, _settings(config), resume=config.resume, overwrite=config.overwrite,
                          results=RESULTS, compare=RESUME_KEYS, implied=IMPLIED_BY_OLDER_RUNS)
    records = kept_records(out / RESULTS, tasks, continuing)
    if model is None:
        model = load_answer_model(config.backbone, constrain_to_grid=config.constrain_to_grid,
                                  reuse_prompt_cache=config.reuse_prompt_cache,
                                  diffusion_block_length=config.diffusion_block_length,
                                  diffusion_steps_per_block=config.diffusion_steps_per_block)
    if getattr(model, "random_weights", False):  # said once the run is open, so a refusal stays one line
        warn_random_weights([f"backbone {config.backbone.name_or_path}"], "pass --backbone PATH")
    todo = [t for t in tasks if t.id not in records]
    write_submission(out / SUBMISSION, _submission(records), tasks)
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="baseline", unit="task", disable=not progress)

    def finish(interrupted: bool) -> dict[str, Any]:
        bar.close()
        summary = summarize(records, tasks, config, model, interrupted=interrupted)
        atomic_write_json(out / SUMMARY, summary, indent=2)
        return summary

    with finish_run(out, finish) as loop:
        for task in todo:
            tokens_before = getattr(model, "tokens_generated", 0)
            start = time.perf_counter()
            with adapted(model, task, config.ttt) as adapter:
                predictions = predict_task(model, task, config)
            seconds = time.perf_counter() - start
            record = task_record(task, predictions, getattr(model, "tokens_generated", 0) - tokens_before, seconds)
            if adapter is not None:
                record["ttt"] = adapter.record()
            with loop.writing():
                append_jsonl(out / RESULTS, record)
                records[task.id] = record
                write_submission(out / SUBMISSION, _submission(records), tasks)
            bar.update(1)
            if "score" in record:
                bar.set_postfix_str(f"solved {sum(sum(t['correct'] for t in r['test']) for r in records.values())}")
    return loop.finished


def _settings(config: BaselineConfig) -> dict[str, Any]:
    """The config as JSON values (tuples become lists, as they come back from config.json)."""
    return json.loads(json.dumps(config_to_dict(config)))


def _submission(records: dict[str, dict[str, Any]]) -> dict[str, list[list[np.ndarray]]]:
    return {tid: [[np.asarray(g, dtype=np.uint8) for g in t["attempts"]] for t in r["test"]]
            for tid, r in records.items()}


def summarize(records: dict[str, dict[str, Any]], tasks: Sequence[Task], config: BaselineConfig,
              model: Any, *, interrupted: bool = False) -> dict[str, Any]:
    """What summary.json holds. The per-task score is the headline; the per-output score is beside it."""
    done = [records[t.id] for t in tasks if t.id in records]
    dataset, split = dataset_label(config.data)
    tokens = sum(r["tokens_generated"] for r in done)
    seconds = sum(r["seconds"] for r in done)
    tests = [t for r in done for t in r["test"]]
    summary: dict[str, Any] = {
        "data": config.data, "dataset": dataset, "split": split,
        "backbone": getattr(model, "name", type(model).__name__), "kind": getattr(model, "kind", None),
        "random_weights": bool(getattr(model, "random_weights", False)),
        "attempts": config.attempts, "augment": config.augment, "temperature": config.temperature,
        "max_new_tokens": config.answer_tokens, "ttt_steps": config.ttt.steps,
        "ttt_seconds": round(sum(r.get("ttt", {}).get("seconds", 0.0) for r in done), 3),
        "tasks": len(tasks), "finished_tasks": len(done), "test_outputs": sum(len(t.test) for t in tasks),
        "answers": sum(t["answers"] for t in tests),
        "parse_failures": sum(len(t["parse_failures"]) for t in tests),
        "tokens_generated": tokens, "seconds": round(seconds, 3),
        "tokens_per_second": tokens / seconds if tokens and seconds > 0 else None,
        "seconds_per_task": seconds / len(done) if done else None,
        "interrupted": interrupted,
    }
    if tasks and all(t.has_solutions for t in tasks):
        report = score_submission(_submission(records), tasks)
        summary.update(
            headline="task_score",
            task_score=report.task_score,      # mean over tasks of the fraction of test inputs solved
            output_score=report.output_score,  # solved test outputs / all test outputs
            solved_tasks=sum(t.score == 1.0 for t in report.tasks),
            solved_test_outputs=report.n_solved_outputs,
            answer_among_candidates=sum(t.get("rank_of_expected") is not None for t in tests) / max(len(tests), 1))
    return summary


def finish_merged(tasks: Sequence[Task], records: dict[str, dict[str, Any]], settings: dict[str, Any],
                  shown: dict[str, Any], *, interrupted: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The summary of a run joined from its shards (`hybrid-arc merge`) from the run's `settings`
    (run.json's, without the shard) and a shard's summary `shown` (for the model it names); the
    baseline writes no other file at its end."""
    config = config_from_dict(BaselineConfig, {k: v for k, v in settings.items() if k != "tasks"},
                              source="the shards' run.json")
    model = SimpleNamespace(name=shown["backbone"], kind=shown["kind"], random_weights=shown["random_weights"])
    return summarize(records, tasks, config, model, interrupted=interrupted), {}


def format_table(summary: dict[str, Any]) -> str:
    """The printed result: one line of settings, then tasks, solved, scores and throughput (the CLI
    warns about random weights before the run)."""
    lines = []
    split = f":{summary['split']}" if summary.get("split") else ""
    kind = f", {summary['kind']}" if summary.get("kind") else ""
    lines.append(f"LLM-only baseline on {summary['dataset']}{split} (backbone {summary['backbone']}{kind}; "
                 f"{plural(summary['attempts'], 'answer')} per prompt, {plural(summary['augment'], 'augmentation')}"
                 + (f", {plural(summary['ttt_steps'], 'test-time training step')} per task"
                    if summary.get("ttt_steps") else "")
                 + ")"
                 + (f"; interrupted after {plural(summary['finished_tasks'], 'task')}" if summary.get("interrupted")
                    else ""))
    scored = "task_score" in summary
    tps = summary.get("tokens_per_second")
    spt = summary.get("seconds_per_task")
    header = ("tasks", "test outputs", "solved", "per-task score", "per-output score", "parse failures",
              "tokens/s", "s/task")
    row = (str(summary["tasks"]), str(summary["test_outputs"]),
           f"{summary['solved_test_outputs']}/{summary['test_outputs']}" if scored else "n/a",
           f"{100 * summary['task_score']:.2f}%" if scored else "n/a",
           f"{100 * summary['output_score']:.2f}%" if scored else "n/a",
           f"{summary['parse_failures']}/{summary['answers']}",
           f"{tps:.0f}" if tps else "-", f"{spt:.2f}" if spt is not None else "-")
    widths = [max(len(h), len(c)) for h, c in zip(header, row)]
    lines.append("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    lines.append("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    if scored:
        lines.append("per-task score = mean over tasks of the fraction of test inputs solved (headline); "
                     "per-output score = solved test outputs / all test outputs; 2 attempts each")
    else:
        lines.append("not scored: the data has no test outputs")
    return "\n".join(lines)
