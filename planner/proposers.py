"""Proposers the planner can ask for candidates. Each sees the task without its test outputs.

- `TRMProposer`: the TRM's voted candidates over augmentations, best first; a retry takes the next
  distinct one (the TRM is deterministic, so feedback cannot change its prediction). With test-time
  training (`trm.ttt`), a task the TRM never trained on is adapted to its demonstrations first.
- `LLMProposer`: the language model answers a prompt with every demonstration, the test input and
  the earlier attempts with the verifier's feedback; with test-time training, through a LoRA adapter
  trained on the task's demonstrations first.
- `ProgramProposer`: the language model writes `transform(grid)`; the sandbox runs it on the train
  pairs (its score there is the candidate's consistency) and on the test input.
- `HybridProposer`: the hybrid model's TRM grid, conditioned on the language model's reading.
- `SearchProposer`: program search over the grid DSL (no weights): the ranked predictions of the
  programs that reproduce every demonstration, then the best partial programs.

The LLM and hybrid proposers also have `predict(train_pairs, test_input)`: an answer from any set of
demonstrations, which the planner's consistency checks (leave-one-out, augmentations) use.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from hybrid_pipeline.arc.scoring import grids_equal
from hybrid_pipeline.arc.tasks import Example, Task
from planner.trace import Attempt, Proposal

if TYPE_CHECKING:  # torch loads only where a model does
    import torch

    from hybrid_pipeline.backbones.base import PromptStates


class TRMProposer:
    name = "trm"

    def __init__(self, model, plan, *, max_augmentations: int | None = 8, batch_size: int = 16,
                 random_weights: bool = False, ttt=None):
        from hybrid_pipeline.trm.ttt import TTTConfig

        self.model = model.eval()
        self.plan = plan
        self.ttt = ttt or TTTConfig()  # not `adapts`: a task without trained rows gets the blank row
        self.canvas = math.isqrt(model.config.seq_len)
        self.max_augmentations = max_augmentations
        self.batch_size = batch_size
        self.random_weights = random_weights
        self._boxes: dict[str, object] = {}

    @classmethod
    def from_checkpoint(cls, directory, **kwargs) -> "TRMProposer":
        from hybrid_pipeline.trm.checkpoint import load_trm

        model, plan = load_trm(directory)
        return cls(model, plan, **kwargs)

    @classmethod
    def untrained(cls, *, seed: int = 0, **kwargs) -> "TRMProposer":
        """A small randomly initialised TRM on the full 30x30 canvas: the offline default, so the loop
        runs end to end before any training. Its answers are noise, and it says so."""
        import torch

        from hybrid_pipeline.arc.datasets import AugmentationPlan
        from hybrid_pipeline.trm.config import TRMConfig
        from hybrid_pipeline.trm.model import TRM

        torch.manual_seed(seed)
        config = TRMConfig(hidden_size=64, num_heads=4, L_layers=2, H_cycles=2, L_cycles=2, halt_max_steps=2,
                           forward_dtype="float32", num_puzzle_identifiers=1)
        return cls(TRM(config), AugmentationPlan.sample([], 1, seed=seed), random_weights=True, **kwargs)

    def _box(self, task: Task):
        if task.id not in self._boxes:
            from hybrid_pipeline.trm.ttt import vote_with_ttt

            self._boxes[task.id] = vote_with_ttt(self.model, [task], self.plan, self.ttt, canvas=self.canvas,
                                                 batch_size=self.batch_size, max_augmentations=self.max_augmentations)
        return self._boxes[task.id]

    def propose(self, task: Task, test_index: int, history: Sequence[Attempt]) -> Proposal:
        side = max(max(ex.input.shape) for ex in (*task.train, *task.test))
        if side > self.canvas:
            return Proposal(None, error=f"task grids up to {side}x{side} do not fit the TRM's "
                                        f"{self.canvas}x{self.canvas} canvas")
        ranked = self._box(task).ranked(task.id, test_index)
        seen = [a.grid for a in history if a.grid is not None]
        for candidate in ranked:
            if not any(grids_equal(candidate.grid, g) for g in seen):
                return Proposal(candidate.grid, confidence=float(candidate.votes), info={"votes": candidate.votes})
        return Proposal(None, error=f"no further distinct TRM candidate ({len(ranked)} in all, all proposed"
                                    f"{' or none decodable' if not ranked else ''})")


def task_from_pairs(pairs: Sequence[tuple[np.ndarray, np.ndarray]], test_input: np.ndarray) -> Task:
    """A one-test-input task made of demonstration pairs, as the consistency checks hand them over."""
    return Task("consistency", tuple(Example(i, o) for i, o in pairs), (Example(test_input),))


def prompt_with_feedback(task: Task, test_index: int, history: Sequence[Attempt], *, max_shown: int = 3) -> str:
    """The task prompt (every demonstration, the test input) with the last few attempts and what the
    verifier said about each, so a retry can avoid the same mistakes. Ends where the answer goes."""
    return "".join(prompt_parts(task, test_index, history, max_shown=max_shown))


def prompt_parts(task: Task, test_index: int, history: Sequence[Attempt], *,
                 max_shown: int = 3) -> tuple[str, str]:
    """`prompt_with_feedback` as (task part, attempt part): every demonstration and the test input,
    the same for every attempt; then the feedback on the last few attempts (none at first) and the
    output marker. The feedback comes after the task part, never inside it, so a model that keeps the
    task part's keys and values encodes only the attempt part again."""
    from hybrid_pipeline.arc.text import OUTPUT_MARKER, grid_to_text, task_to_prompt

    head, marker, _ = task_to_prompt(task, test_index).rpartition(OUTPUT_MARKER)
    shown = [a for a in history if a.duplicate_of is None][-max_shown:]
    if not shown:
        return head, marker + "\n"
    notes = ["Earlier attempts at this test input were wrong:"]
    for attempt in shown:
        answer = grid_to_text(attempt.grid) if attempt.grid is not None else "(no grid)\n"
        notes.append(f"Attempt {attempt.index + 1}:\n{answer}Feedback: {attempt.feedback}")
    return head, "\n".join(notes) + "\n" + marker + "\n"


class HybridProposer:
    """The hybrid model: the LM reads the prompt (with feedback), the TRM reasons from its latents,
    the LM answers with the TRM's latents as prefix tokens. Proposes the LM's answer, then the TRM's
    grid, whichever is new.

    With the hybrid's prompt_first layout the task part of the prompt (`prompt_parts`) is encoded once
    per test input: each attempt runs only its feedback text after the task part's stored keys and
    values (the prompt's tokens are the task part's followed by the attempt part's)."""

    name = "hybrid"

    def __init__(self, model, *, random_weights: bool = False):
        self.model = model.eval()
        self.random_weights = random_weights or getattr(model.backbone, "random_weights", False)
        self._task_part: tuple[str, torch.Tensor, PromptStates] | None = None  # the last one: (text, ids, states)
        self.task_part_encodings = 0  # how many times a task part ran through the backbone

    def _too_big(self, task: Task) -> str | None:
        side = max(max(ex.input.shape) for ex in (*task.train, *task.test))
        canvas = self.model.config.canvas
        if side > canvas:
            return f"task grids up to {side}x{side} do not fit the hybrid's {canvas}x{canvas} canvas"
        return None

    def _predict(self, task: Task, test_index: int, history: Sequence[Attempt]):
        head, tail = prompt_parts(task, test_index, history)
        batch = self.model.encode([head + tail], [task.test[test_index].input])
        if self.model.config.layout == "prompt_first":
            batch.update(self._states_after(head, tail))
        if self.model.feedback is not None and history:
            from adapters.feedback import problem_counts

            batch["feedback"] = problem_counts([history[-1].verdict.problems], device=self.model.backbone.device)
        return self.model.predict(batch, **self.model.backbone.stopping_kwargs())

    def _states_after(self, head: str, tail: str) -> dict[str, torch.Tensor]:
        """Batch entries for the prompt `head + tail` as the task part's tokens then the attempt part's,
        with its states: the task part's stored ones (encoded when `head` is new) extended by `tail`."""
        import torch

        backbone, tokenizer = self.model.backbone, self.model.processor.tokenizer
        with torch.no_grad():
            if self._task_part is None or self._task_part[0] != head:
                ids = torch.tensor([tokenizer(head)["input_ids"]], device=backbone.device)  # [1,T]
                self._task_part = (head, ids, self.model.encode_prompt(ids))
                self.task_part_encodings += 1
            _, ids, states = self._task_part
            more = torch.tensor([tokenizer(tail, add_special_tokens=False)["input_ids"]], device=backbone.device)
            full = backbone.extend_prompt_states(states, None, more)
        prompt_ids = torch.cat([ids, more], dim=1)  # [1,T+T']
        return {"prompt_ids": prompt_ids, "prompt_mask": torch.ones_like(prompt_ids), "prompt_hidden": full.hidden,
                "prompt_kv": full.kv}

    def predict(self, pairs, test_input: np.ndarray) -> np.ndarray | None:
        """The LM's answer from these demonstrations (the TRM's grid when the answer is not a grid)."""
        task = task_from_pairs(pairs, test_input)
        if self._too_big(task):
            return None
        prediction = self._predict(task, 0, ())
        return prediction.answer_grids[0] if prediction.answer_grids[0] is not None else prediction.trm_grids[0]

    def propose(self, task: Task, test_index: int, history: Sequence[Attempt]) -> Proposal:
        if error := self._too_big(task):
            return Proposal(None, error=error)
        prediction = self._predict(task, test_index, history)
        seen = [a.grid for a in history if a.grid is not None]
        options = [(prediction.answer_grids[0], prediction.answer_texts[0]), (prediction.trm_grids[0], None)]
        # The TRM's halting confidence after each supervision step, for the report.
        info = {"q_halt_by_step": [round(float(q), 3) for q in prediction.q_halt_by_step[0]]}
        for grid, text in options:
            if grid is not None and not any(grids_equal(grid, g) for g in seen):
                return Proposal(grid, text=text, confidence=float(prediction.q_halt_logits[0]), info=info)
        errors = [e for e in (prediction.answer_errors[0], prediction.trm_errors[0]) if e]
        return Proposal(None, text=prediction.answer_texts[0],
                        error="; ".join(errors) or "the hybrid repeated earlier answers")


class LLMProposer:
    """The language model answers the task prompt, with the earlier attempts and their feedback.

    Decoding is greedy: each retry's prompt differs (it carries the new feedback), so greedy
    answers differ too, and a run is reproducible without seeds.

    With `ttt` (a `backbones.ttt.TTTConfig` with steps > 0) every answer about a task comes from the
    model with a LoRA adapter trained on that task's demonstrations (`backbones.answer.adapted`):
    trained on the first attempt and kept for the retries. `predict`, which the consistency checks
    call with other demonstrations (one left out, or augmented), trains on the demonstrations it
    is given, so a left-out pair is never learnt from: k + 3 more adapters per test input.
    """

    name = "llm"

    def __init__(self, answer_model, *, max_new_tokens: int | None = None, ttt=None):
        from hybrid_pipeline.backbones.answer import MAX_ANSWER_TOKENS

        self.model = answer_model
        self.max_new_tokens = max_new_tokens or MAX_ANSWER_TOKENS
        self.ttt = ttt
        self.random_weights = bool(getattr(answer_model, "random_weights", False))

    def _answer(self, task: Task, prompt: str) -> str:
        from hybrid_pipeline.backbones.answer import adapted

        with adapted(self.model, task, self.ttt):
            return self.model.generate_answers(prompt, 1, temperature=0.0, max_new_tokens=self.max_new_tokens,
                                               seed=0)[0]

    def propose(self, task: Task, test_index: int, history: Sequence[Attempt]) -> Proposal:
        from hybrid_pipeline.arc.text import AnswerParseError, parse_grid

        text = self._answer(task, prompt_with_feedback(task, test_index, history))
        try:
            return Proposal(parse_grid(text), text=text)
        except AnswerParseError as e:
            return Proposal(None, text=text, error=f"the answer is not a grid: {e}")

    def predict(self, pairs, test_input: np.ndarray) -> np.ndarray | None:
        """The LM's greedy answer from these demonstrations; None when it is not a grid."""
        from hybrid_pipeline.arc.text import AnswerParseError, parse_grid, task_to_prompt

        task = task_from_pairs(pairs, test_input)
        try:
            return parse_grid(self._answer(task, task_to_prompt(task)))
        except AnswerParseError:
            return None


PROGRAM_INSTRUCTIONS = (
    "Write a Python function `transform(grid)` that maps every example input above to its output. "
    "`grid` is a list of rows of ints 0-9; return the output grid the same way. Answer with the code only.\n")


def extract_program(text: str) -> str | None:
    """The Python source in an LM answer: a fenced ```python block if any, else everything from the
    first `def transform`; None when there is no `transform` function."""
    import re

    fenced = re.search(r"```(?:python)?\n(.*?)```", text, flags=re.S)
    source = fenced.group(1) if fenced else text[text.find("def transform"):] if "def transform" in text else None
    if source is None or "def transform" not in source:
        return None
    return source


class ProgramProposer:
    """The language model writes `transform(grid)`; the sandbox runs it on every train input (its
    exact-match share there is the candidate's consistency) and on the test input (the candidate)."""

    name = "program"

    def __init__(self, answer_model, *, max_new_tokens: int = 512, time_limit_s: float = 2.0,
                 memory_limit_mb: int = 512):
        self.model = answer_model
        self.max_new_tokens = max_new_tokens
        self.time_limit_s = time_limit_s
        self.memory_limit_mb = memory_limit_mb
        self.random_weights = bool(getattr(answer_model, "random_weights", False))

    def propose(self, task: Task, test_index: int, history: Sequence[Attempt]) -> Proposal:
        from verifier.program_problems import program_problems
        from verifier.sandbox import check_program

        prompt = prompt_with_feedback(task, test_index, history)
        prompt = prompt[:prompt.rfind("Output:")] + PROGRAM_INSTRUCTIONS
        text = self.model.generate_answers(prompt, 1, temperature=0.0, max_new_tokens=self.max_new_tokens,
                                           seed=0)[0]
        source = extract_program(text)
        if source is None:
            return Proposal(None, text=text, error="the answer holds no `def transform(grid)`")
        report = check_program(source, task, time_limit_s=self.time_limit_s, memory_limit_mb=self.memory_limit_mb)
        outputs = report.test_outputs()
        grid = outputs[test_index] if test_index < len(outputs) else None
        problems = tuple(program_problems(report))
        consistency = report.n_train_exact / len(report.train) if report.train else 0.0
        error = None if grid is not None else "the program gave no grid for the test input"
        return Proposal(grid, text=source, error=error, problems=problems, consistency=consistency,
                        info={"fits": [r.status == "exact" for r in report.train]})


def feedback_constraints(history: Sequence[Attempt]):
    """What the verifier's problems with earlier attempts imply about the answer, as a test on one
    predicted grid: a "shape" problem names the shapes the train pairs allow, a "palette" problem
    the colours they allow. None when no earlier problem constrains the answer."""
    shapes, colours = None, None
    for attempt in history:
        for problem in attempt.verdict.problems:
            if problem.kind == "shape" and problem.expected:
                shapes = {tuple(s) for s in problem.expected}
            elif problem.kind == "palette" and problem.expected is not None:
                colours = set(problem.expected)
    if shapes is None and colours is None:
        return None

    def fits(grid: np.ndarray) -> bool:
        if shapes is not None and grid.shape not in shapes:
            return False
        return colours is None or set(np.unique(grid).tolist()) <= colours

    return fits


class SearchProposer:
    """Program search over the grid DSL (`hybrid_pipeline.dsl`): needs no weights.

    The first attempt at a task runs the search once for all its test inputs; each attempt proposes
    the best-ranked prediction not proposed before (programs that reproduce every demonstration,
    shortest first, then the best partial programs). With `use_feedback`, a retry after the
    verifier found a shape or palette problem runs a new search round that keeps only programs
    meeting the constraints those problems imply, at the same budget. Each proposal carries its
    program as runnable Python and which demonstration pairs it reproduces.
    """

    name = "search"

    def __init__(self, config=None, *, use_feedback: bool = True):
        from hybrid_pipeline.dsl.search import SearchConfig

        self.config = config or SearchConfig()
        self.use_feedback = use_feedback
        self._results: dict[tuple, object] = {}  # (task content hash, constraint key) -> SearchResult

    def _search(self, task: Task, key: tuple = (), accept=None):
        from hybrid_pipeline.dsl.search import search

        cache_key = (task.content_hash(), *key)
        if cache_key not in self._results:
            if not key:  # a new task: forget the last one's rounds
                self._results = {k: v for k, v in self._results.items() if k[0] == cache_key[0]}
            self._results[cache_key] = search(task, self.config, accept=accept)
        return self._results[cache_key]

    def propose(self, task: Task, test_index: int, history: Sequence[Attempt]) -> Proposal:
        result = self._search(task)
        if result.error:
            return Proposal(None, error=f"search: {result.error}")
        seen = [a.grid for a in history if a.grid is not None]
        constraint = feedback_constraints(history) if self.use_feedback else None
        ranked = result.ranked()
        steered = False
        if constraint is not None:
            kept = [c for c in ranked if constraint(c.predictions[test_index])]
            steered = len(kept) < len(ranked)
            if not any(not _seen(c.predictions[test_index], seen) for c in kept):
                round_key = ("feedback", test_index, _constraint_key(history))
                again = self._search(task, round_key, lambda preds: constraint(preds[test_index]))
                kept += [c for c in again.ranked() if not any(c.program == k.program for k in kept)]
            ranked = kept
        for rank, candidate in enumerate(ranked):
            grid = candidate.predictions[test_index]
            if _seen(grid, seen):
                continue
            info = _search_info(result, candidate, rank, steered)
            problems = () if candidate.fits_all else (_partial_problem(candidate),)
            # consistency: the share of demonstration cells the program gets right, the measure the
            # search ranks partial programs by, so the planner keeps the search's order.
            return Proposal(grid, text=candidate.program.to_python(), problems=problems,
                            consistency=float(candidate.cells_right), confidence=float(candidate.cells_right),
                            info=info)
        return Proposal(None, error=f"search: no further distinct program ({len(result.candidates)} fit every "
                                    f"demonstration, {len(result.partials)} partial; {result.expanded} states "
                                    f"expanded{', capped by ' + result.capped if result.capped else ''})",
                        info=_search_info(result, None, None, steered))


def _seen(grid: np.ndarray, seen: Sequence[np.ndarray]) -> bool:
    return any(grids_equal(grid, g) for g in seen)


def _constraint_key(history: Sequence[Attempt]) -> str:
    return repr(sorted({(p.kind, repr(p.expected)) for a in history for p in a.verdict.problems
                        if p.kind in ("shape", "palette")}))


def _search_info(result, candidate, rank: int | None, steered: bool) -> dict:
    info = {"expanded": result.expanded, "states": result.states, "search_seconds": round(result.seconds, 3),
            "capped": result.capped, "fitting_programs": len(result.candidates), "feedback_steered": steered}
    if candidate is not None:
        info.update(rank=rank, expression=str(candidate.program), fits=list(candidate.fits),
                    cells_right=round(candidate.cells_right, 4))
    return info


def _partial_problem(candidate):
    from verifier.verdict import Problem

    wrong = [i for i, ok in enumerate(candidate.fits) if not ok]
    return Problem("program_mismatch", "train " + ", ".join(map(str, wrong)), expected="every train output",
                   got=f"{100 * candidate.cells_right:.1f}% of train output cells right",
                   detail=f"the program reproduces {sum(candidate.fits)} of {len(candidate.fits)} train pairs")
