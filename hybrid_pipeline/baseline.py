"""LLM-only baseline: a frozen language model answers ARC tasks from a few-shot prompt.

For each test input the model reads the task as text (every demonstration pair, then the test
input: `arc.text.task_to_prompt`) and writes `attempts` answers, the first greedy and the rest
sampled. With `augment=K` it does the same under K random augmentations of the task as well
(dihedral transform and colour permutation, the original task first); every answer that parses is
mapped back by the inverse augmentation and voted, and the two candidates with the most votes
become attempt_1 and attempt_2. Ties keep the order of generation, so without augmentation the
attempts are the greedy answer, then the first different sampled one. An answer that does not
parse is a failed attempt, recorded with the parser's reason.

The model is anything with `generate_answers` (`AnswerModel`): `BackboneAnswerModel` wraps a causal
or diffusion backbone, tests plug in scripted models. The solver sees `Task.without_solutions()`;
test outputs are read only after a task's attempts are made, to score it.

Files in `out_dir` (DESIGN.md, "CLI contract"):
- `results.jsonl`: one line per task, appended as it finishes (attempts, vote counts, parse failures
  with reasons, correctness when solutions are known, tokens generated, seconds);
- `submission.json`: Kaggle format for every selected task, rewritten atomically after each task
  (placeholder grids where there is no prediction yet);
- `summary.json`: at the end (and on Ctrl-C, marked interrupted): scores, throughput, settings;
- `run.json`: the settings and versions, so that `resume` refuses to mix results made with other
  settings (`hybrid_pipeline.runs`).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from hybrid_pipeline.arc.files import append_jsonl, atomic_write_json
from hybrid_pipeline.arc.scoring import is_solved, score_submission, write_submission
from hybrid_pipeline.arc.tasks import BUNDLED_SPLITS, MAX_SIDE, Task, load_tasks
from hybrid_pipeline.arc.text import DIGITS, AnswerParseError, parse_grid, task_to_prompt
from hybrid_pipeline.arc.views import View, plan_views, predict_under_views, stable_int, task_augmentations
from hybrid_pipeline.arc.voting import Candidate, rank_of
from hybrid_pipeline.backbones.config import BackboneConfig, resolve_dtype
from hybrid_pipeline.config import config_to_dict
from hybrid_pipeline.runs import kept_records, open_run

# The largest answer: 30 rows of 30 digits and a newline, then EOS. With one token per character
# (or fewer characters per token) no valid answer needs more tokens than this.
MAX_ANSWER_TOKENS = MAX_SIDE * (MAX_SIDE + 1) + 1
RESULTS, SUBMISSION, SUMMARY = "results.jsonl", "submission.json", "summary.json"
# Settings that change what a run predicts: a resumed run must match them.
RESUME_KEYS = ("data", "backbone", "attempts", "augment", "temperature", "max_new_tokens",
               "constrain_to_grid", "diffusion_block_length", "diffusion_steps_per_block", "seed")


class BaselineError(ValueError):
    """A baseline run that cannot start as configured; the message is one line saying what to change."""


@dataclass
class BaselineConfig:
    data: str = "arc-agi-1:evaluation"       # a data spec (DESIGN.md, "CLI contract")
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


class AnswerModel(Protocol):
    """What the baseline needs from a model: `n` answers to one prompt, as text.

    Answer 0 is greedy; answers 1..n-1 are sampled at `temperature` (a repeat of answer 0 when it is
    0), reproducibly from `seed`. Optional attributes the baseline reads when present:
    `tokens_generated` (a running count, for tokens/s), `random_weights`, `name` and `kind`.
    """

    def generate_answers(self, prompt: str, n: int, *, temperature: float, max_new_tokens: int,
                         seed: int) -> list[str]: ...


# --------------------------------------------------------------------------------------------------
# The backbone as an AnswerModel


class GridEndStop:
    """Stops generation once more tokens cannot change what `parse_grid` reads.

    That is after a blank line that follows a digit (the grid block has ended) or after a row of
    more than 30 digits (the answer can no longer be a valid grid). An untrained model constrained
    to digits never emits EOS on its own and would otherwise write all `max_new_tokens`. Only the
    last 31 tokens are looked at, in Python: a handful of tensor ops would cost more per token than
    the tiny test model's forward pass.
    """

    def __init__(self, newline_id: int, digit_ids: Sequence[int], max_side: int = MAX_SIDE):
        self.newline_id = newline_id
        self.digit_ids = frozenset(int(i) for i in digit_ids)
        self.max_side = max_side

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        """input_ids [B,N] holds only generated tokens (the backbone generates from inputs_embeds)."""
        tails = input_ids[:, -(self.max_side + 1):].tolist()
        return torch.tensor([self._done(tail) for tail in tails], dtype=torch.bool, device=input_ids.device)

    def _done(self, tail: list[int]) -> bool:
        if len(tail) >= 3 and tail[-1] == tail[-2] == self.newline_id and tail[-3] in self.digit_ids:
            return True
        return len(tail) > self.max_side and all(t in self.digit_ids for t in tail)


def grid_end_stop(tokenizer: Any) -> GridEndStop:
    """A `GridEndStop` for a tokenizer whose digits and newline are single tokens (checked by
    `grid_alphabet_ids`); the last id of each character's encoding is then the character's own."""
    def last_id(ch: str) -> int:
        return tokenizer.encode(ch, add_special_tokens=False)[-1]

    return GridEndStop(last_id("\n"), [last_id(d) for d in DIGITS])


class BackboneAnswerModel:
    """`AnswerModel` over a `CausalBackbone` or `DiffusionBackbone` and its tokenizer.

    Causal: the prompt is encoded once (`encode_prompt`) and every answer continues from a copy of
    its KV cache, so n answers cost one prompt pass instead of n (`reuse_prompt_cache=False` re-encodes,
    for comparison). Diffusion: no KV cache, as in LLaDA: attention goes both ways, so the prompt's
    keys and values change while the answer fills in and every step runs the whole sequence.
    `tokens_generated` counts new tokens (EOS included); for diffusion every filled position counts.
    """

    def __init__(self, backbone: Any, *, constrain_to_grid: bool = True, reuse_prompt_cache: bool = True,
                 stop_at_grid_end: bool = True, diffusion_block_length: int = 32,
                 diffusion_steps_per_block: int = 16, generate_kwargs: dict[str, Any] | None = None):
        from hybrid_pipeline.backbones.causal import grid_alphabet_ids
        from hybrid_pipeline.backbones.diffusion import DiffusionBackbone

        self.backbone = backbone
        self.tokenizer = backbone.tokenizer
        self.is_diffusion = isinstance(backbone, DiffusionBackbone)
        self.constrain_to_grid = constrain_to_grid
        self.reuse_prompt_cache = reuse_prompt_cache
        self.diffusion_block_length = diffusion_block_length
        self.diffusion_steps_per_block = diffusion_steps_per_block
        self.generate_kwargs = dict(generate_kwargs or {})  # passed to model.generate (causal only)
        self.random_weights = bool(backbone.random_weights)
        self.name = backbone.config.name_or_path
        self.kind = backbone.config.kind
        self.tokens_generated = 0
        self._stop = None
        if constrain_to_grid:
            try:
                grid_alphabet_ids(self.tokenizer)  # fail now, not after the first task
            except ValueError as e:
                raise BaselineError(f"backbone '{self.name}': {e}; run with constrain_to_grid off") from None
            if stop_at_grid_end and not self.is_diffusion:
                self._stop = grid_end_stop(self.tokenizer)

    def generate_answers(self, prompt: str, n: int, *, temperature: float, max_new_tokens: int,
                         seed: int) -> list[str]:
        ids = self.tokenizer(prompt, return_tensors="pt").input_ids.to(self.backbone.device)  # [1,T]
        cache = self.backbone.encode_prompt(ids) if self.reuse_prompt_cache and not self.is_diffusion else None
        answers: list[str] = []
        for k in range(n):
            if k > 0 and temperature == 0:
                answers.append(answers[0])  # greedy decoding would only repeat itself
            elif self.is_diffusion:
                answers.append(self._diffuse(ids, temperature if k else 0.0, max_new_tokens, seed + k))
            else:
                answers.append(self._continue(ids, cache, temperature if k else None, max_new_tokens, seed + k))
        return answers

    def _continue(self, ids: torch.Tensor, cache: Any, temperature: float | None, max_new_tokens: int,
                  seed: int) -> str:
        """One answer after the prompt `ids` [1,T] (or its cache); greedy when temperature is None."""
        from transformers import StoppingCriteriaList

        kwargs = dict(self.generate_kwargs)
        if self._stop is not None:
            kwargs["stopping_criteria"] = StoppingCriteriaList([self._stop])
        if temperature is not None:
            kwargs.update(do_sample=True, temperature=temperature)
        source = {"prompt_cache": cache} if cache is not None else {"prompt_ids": ids}
        with _seeded(seed, ids.device) if temperature is not None else nullcontext():
            out = self.backbone.generate(**source, max_new_tokens=max_new_tokens,
                                         constrain_to_grid=self.constrain_to_grid, **kwargs)  # [1,N]
        self.tokens_generated += out.shape[1]
        return self.tokenizer.decode(out[0], skip_special_tokens=True)

    def _diffuse(self, ids: torch.Tensor, temperature: float, max_new_tokens: int, seed: int) -> str:
        block = self.diffusion_block_length
        gen_length = -(-max_new_tokens // block) * block  # the sampler fills whole blocks
        steps = gen_length // block * self.diffusion_steps_per_block
        generator = torch.Generator(device=ids.device).manual_seed(seed)
        eos = self.tokenizer.eos_token_id
        sample = self.backbone.generate(ids, gen_length=gen_length, block_length=block, steps=steps,
                                        temperature=temperature, constrain_to_grid=self.constrain_to_grid,
                                        generator=generator, stop_token_ids=None if eos is None else [eos])
        tokens = sample.tokens[0]  # [G]
        if eos is not None and (tokens == eos).any():
            tokens = tokens[:int((tokens == eos).nonzero()[0, 0])]  # LLaDA pads the answer with EOS
        self.tokens_generated += sample.sampled
        return self.tokenizer.decode(tokens, skip_special_tokens=True)


@contextmanager
def _seeded(seed: int, device: torch.device):
    """Seed the global RNG that `model.generate` samples from, and restore it afterwards."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def load_answer_model(config: BaselineConfig) -> BackboneAnswerModel:
    """Load `config.backbone`; raises BackboneLoadError when it cannot be loaded."""
    from hybrid_pipeline.backbones import load_backbone

    return BackboneAnswerModel(load_backbone(config.backbone), constrain_to_grid=config.constrain_to_grid,
                               reuse_prompt_cache=config.reuse_prompt_cache,
                               diffusion_block_length=config.diffusion_block_length,
                               diffusion_steps_per_block=config.diffusion_steps_per_block)


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
    run, or another `limit`, asks every prompt the same way.
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


def run_baseline(config: BaselineConfig, *, model: AnswerModel | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the baseline over `config.data` and write the files in `config.out_dir`; returns the summary.

    User errors, raised before any task runs: ARCDataError (data spec, task files, a corrupt
    results.jsonl), BackboneLoadError (the backbone), BaselineError (settings), RunError (out_dir
    conflicts: results there without resume, a resume with other settings).
    """
    from tqdm.auto import tqdm

    ids = list(config.tasks) if config.tasks else None
    tasks = load_tasks(config.data, ids=ids, limit=config.limit).raise_if_problems().tasks
    out = Path(config.out_dir)
    continuing = open_run(out, _settings(config), resume=config.resume, overwrite=config.overwrite,
                          results=RESULTS, compare=RESUME_KEYS)
    records = kept_records(out / RESULTS, tasks, continuing)
    if model is None:
        model = load_answer_model(config)
    todo = [t for t in tasks if t.id not in records]
    write_submission(out / SUBMISSION, _submission(records), tasks)
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="baseline", unit="task", disable=not progress)
    try:
        for task in todo:
            tokens_before = getattr(model, "tokens_generated", 0)
            start = time.perf_counter()
            predictions = predict_task(model, task, config)
            seconds = time.perf_counter() - start
            record = task_record(task, predictions, getattr(model, "tokens_generated", 0) - tokens_before, seconds)
            append_jsonl(out / RESULTS, record)
            records[task.id] = record
            write_submission(out / SUBMISSION, _submission(records), tasks)
            bar.update(1)
            if "score" in record:
                bar.set_postfix_str(f"solved {sum(sum(t['correct'] for t in r['test']) for r in records.values())}")
    except KeyboardInterrupt:
        atomic_write_json(out / SUMMARY, summarize(records, tasks, config, model, interrupted=True), indent=2)
        raise
    finally:
        bar.close()
    summary = summarize(records, tasks, config, model)
    atomic_write_json(out / SUMMARY, summary, indent=2)
    return summary


def _settings(config: BaselineConfig) -> dict[str, Any]:
    """The config as JSON values (tuples become lists, as they come back from config.json)."""
    return json.loads(json.dumps(config_to_dict(config)))


def _submission(records: dict[str, dict[str, Any]]) -> dict[str, list[list[np.ndarray]]]:
    return {tid: [[np.asarray(g, dtype=np.uint8) for g in t["attempts"]] for t in r["test"]]
            for tid, r in records.items()}


def _dataset_label(spec: str) -> tuple[str, str | None]:
    """("arc-agi-1", "evaluation") for a bundled split; (the path, None) otherwise."""
    if spec in BUNDLED_SPLITS:
        dataset, split = spec.split(":")
        return dataset, split
    return spec, None


def summarize(records: dict[str, dict[str, Any]], tasks: Sequence[Task], config: BaselineConfig,
              model: Any, *, interrupted: bool = False) -> dict[str, Any]:
    """What summary.json holds. The per-task score is the headline; the per-output score is beside it."""
    done = [records[t.id] for t in tasks if t.id in records]
    dataset, split = _dataset_label(config.data)
    tokens = sum(r["tokens_generated"] for r in done)
    seconds = sum(r["seconds"] for r in done)
    tests = [t for r in done for t in r["test"]]
    summary: dict[str, Any] = {
        "data": config.data, "dataset": dataset, "split": split,
        "backbone": getattr(model, "name", type(model).__name__), "kind": getattr(model, "kind", None),
        "random_weights": bool(getattr(model, "random_weights", False)),
        "attempts": config.attempts, "augment": config.augment, "temperature": config.temperature,
        "max_new_tokens": config.answer_tokens,
        "tasks": len(tasks), "finished_tasks": len(done), "test_outputs": sum(len(t.test) for t in tasks),
        "answers": sum(t["answers"] for t in tests),
        "parse_failures": sum(len(t["parse_failures"]) for t in tests),
        "tokens_generated": tokens, "seconds": round(seconds, 3),
        "tokens_per_second": tokens / seconds if tokens and seconds > 0 else None,
        "seconds_per_task": seconds / len(done) if done else None,
    }
    if interrupted:
        summary["interrupted"] = True
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


def format_table(summary: dict[str, Any]) -> str:
    """The printed result: one line of settings, then tasks, solved, scores and throughput."""
    lines = []
    if summary.get("random_weights"):
        lines.append(f"!!! backbone '{summary['backbone']}' has RANDOM weights: its answers are noise and "
                     "the score means nothing; this run only checks the pipeline !!!")
    split = f":{summary['split']}" if summary.get("split") else ""
    kind = f", {summary['kind']}" if summary.get("kind") else ""
    lines.append(f"LLM-only baseline on {summary['dataset']}{split} (backbone {summary['backbone']}{kind}; "
                 f"{summary['attempts']} answers per prompt, {summary['augment']} augmentations)"
                 + (f"; interrupted after {summary['finished_tasks']} tasks" if summary.get("interrupted") else ""))
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
