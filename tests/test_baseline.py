"""LLM-only baseline end to end on bundled ARC tasks: scripted models (right, garbage, right only
under augmentation), resume, no peeking at test outputs, the tiny causal and diffusion backbones,
and the script's exit codes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from hybrid_pipeline.arc.errors import ARCDataError
from hybrid_pipeline.arc.files import read_jsonl
from hybrid_pipeline.arc.scoring import PLACEHOLDER_GRID, read_submission, score_submission
from hybrid_pipeline.arc.tasks import load_tasks
from hybrid_pipeline.arc.text import grid_to_text, parse_grid, task_to_prompt
from hybrid_pipeline.arc.views import task_augmentations
from hybrid_pipeline.backbones import BackboneConfig, BackboneLoadError
from hybrid_pipeline.backbones.ttt import TTTConfig
from hybrid_pipeline.baseline import BaselineConfig, BaselineError, format_table, run_baseline
from hybrid_pipeline.runs import RunError

DATA = "arc-agi-1:evaluation"
SMALL_TASK = "66e6c45b"  # the shortest prompt of the split (172 characters)
TWO_TESTS = "12997ef3"   # a task with two test inputs


class ScriptedModel:
    """Answers looked up by prompt (a test fixture may know the solutions; the library may not)."""

    def __init__(self, table: dict[str, str] | None = None, default: tuple[str, ...] = ("no grid here",)):
        self.table = table or {}
        self.default = default
        self.prompts: list[str] = []

    def generate_answers(self, prompt, n, *, temperature, max_new_tokens, seed):
        self.prompts.append(prompt)
        if prompt in self.table:
            return [self.table[prompt]] * n
        return [self.default[k % len(self.default)] for k in range(n)]


class EchoModel(ScriptedModel):
    """Answers with the prompt's last input grid, whatever the task."""

    def generate_answers(self, prompt, n, **kwargs):
        self.prompts.append(prompt)
        return [prompt.rsplit("Input:\n", 1)[1]] * n


def solutions_table(tasks) -> dict[str, str]:
    return {task_to_prompt(t, i): grid_to_text(ex.output) for t in tasks for i, ex in enumerate(t.test)}


def selected(ids=None, limit=None):
    return load_tasks(DATA, ids=ids, limit=limit).raise_if_problems().tasks


def test_scripted_correct_model_scores_100_percent(tmp_path):
    ids = ("00576224", "009d5c81", TWO_TESTS)
    tasks = selected(ids)
    assert sum(len(t.test) for t in tasks) == 4  # one task has two test inputs
    config = BaselineConfig(data=DATA, tasks=ids, out_dir=str(tmp_path))
    summary = run_baseline(config, model=ScriptedModel(solutions_table(tasks)), progress=False)
    assert summary["task_score"] == 1.0 and summary["output_score"] == 1.0
    assert summary["solved_test_outputs"] == 4 and summary["parse_failures"] == 0
    assert (summary["dataset"], summary["split"], summary["random_weights"]) == ("arc-agi-1", "evaluation", False)
    report = score_submission(read_submission(tmp_path / "submission.json", tasks), tasks)
    assert report.task_score == 1.0
    records = list(read_jsonl(tmp_path / "results.jsonl"))
    assert [r["task_id"] for r in records] == [t.id for t in tasks]
    assert all(t["correct"] and t["rank_of_expected"] == 1 for r in records for t in r["test"])
    assert json.loads((tmp_path / "summary.json").read_text())["task_score"] == 1.0
    table = format_table(summary)
    assert "100.00%" in table and "4/4" in table


def test_unparseable_answers_are_recorded_failures_not_crashes(tmp_path):
    tasks = selected(limit=2)
    model = ScriptedModel(default=("I think the answer is blue", "12\n3\n"))
    summary = run_baseline(BaselineConfig(data=DATA, limit=2, out_dir=str(tmp_path)), model=model, progress=False)
    assert summary["task_score"] == 0.0 and summary["parse_failures"] == summary["answers"] == 4
    record = next(read_jsonl(tmp_path / "results.jsonl"))
    reasons = [f["reason"] for f in record["test"][0]["parse_failures"]]
    assert reasons == ["no grid found: no line starts with a digit 0-9",
                       "row 1 has 1 cell, expected 2 (ragged rows)"]
    assert record["test"][0]["attempts"] == [] and record["test"][0]["correct"] is False
    submission = read_submission(tmp_path / "submission.json", tasks)  # valid: placeholders everywhere
    assert all(np.array_equal(g, PLACEHOLDER_GRID) for t in tasks for g in submission[t.id][0])


def test_augmentation_votes_map_answers_back_to_the_original_frame(tmp_path):
    (task,) = selected([SMALL_TASK])
    expected = task.test[0].output
    views = task_augmentations(task.id, 4, seed=0)
    assert views[0].is_identity and len({v.name for v in views}) == 4
    wrong = (expected + 1) % 10
    # Right under every augmentation (in that augmentation's frame), wrong on the original task.
    table = {task_to_prompt(v.apply_task(task.without_solutions())): grid_to_text(v.apply(wrong if v.is_identity
                                                                                         else expected))
             for v in views}
    config = BaselineConfig(data=DATA, tasks=(SMALL_TASK,), augment=3, attempts=1, out_dir=str(tmp_path))
    model = ScriptedModel(table)
    summary = run_baseline(config, model=model, progress=False)
    assert sorted(model.prompts) == sorted(table)  # exactly these four views were asked
    test = next(read_jsonl(tmp_path / "results.jsonl"))["test"][0]
    assert test["votes"] == [3, 1] and test["correct"]
    assert np.array_equal(test["attempts"][0], expected) and np.array_equal(test["attempts"][1], wrong)
    assert summary["task_score"] == 1.0


def test_resume_skips_finished_tasks_and_refuses_to_overwrite(tmp_path):
    tasks = selected(limit=3)
    model = ScriptedModel(solutions_table(tasks))
    run_baseline(BaselineConfig(data=DATA, limit=2, out_dir=str(tmp_path)), model=model, progress=False)
    with pytest.raises(RunError, match="--resume"):
        run_baseline(BaselineConfig(data=DATA, limit=3, out_dir=str(tmp_path)), model=model, progress=False)
    with pytest.raises(RunError, match="attempts 2 -> 1"):
        run_baseline(BaselineConfig(data=DATA, limit=3, attempts=1, out_dir=str(tmp_path), resume=True),
                     model=model, progress=False)
    model.prompts.clear()
    summary = run_baseline(BaselineConfig(data=DATA, limit=3, out_dir=str(tmp_path), resume=True), model=model,
                           progress=False)
    assert model.prompts == [task_to_prompt(tasks[2])]  # only the unfinished task was asked
    assert [r["task_id"] for r in read_jsonl(tmp_path / "results.jsonl")] == [t.id for t in tasks]
    assert summary["tasks"] == 3 and summary["task_score"] == 1.0  # resumed records count too
    assert score_submission(read_submission(tmp_path / "submission.json", tasks), tasks).task_score == 1.0


def test_a_run_recorded_before_test_time_training_existed_resumes_without_it(tmp_path):
    tasks = selected(limit=2)
    model = ScriptedModel(solutions_table(tasks))
    run_baseline(BaselineConfig(data=DATA, limit=1, seed=3, ttt=TTTConfig(seed=3), out_dir=str(tmp_path)), model=model,
                 progress=False)  # as the command line makes it: the run's seed seeds test-time training too
    run_file = tmp_path / "run.json"
    older = json.loads(run_file.read_text())
    del older["settings"]["ttt"]  # what a run written before `ttt` existed recorded
    run_file.write_text(json.dumps(older))
    with pytest.raises(RunError, match="ttt.steps 0 -> 4"):
        run_baseline(BaselineConfig(data=DATA, limit=2, seed=3, out_dir=str(tmp_path), resume=True,
                                    ttt=TTTConfig(steps=4, seed=3)), model=model, progress=False)
    summary = run_baseline(BaselineConfig(data=DATA, limit=2, seed=3, ttt=TTTConfig(seed=3), out_dir=str(tmp_path),
                                          resume=True), model=model, progress=False)
    assert summary["tasks"] == 2 and summary["task_score"] == 1.0


def test_stripped_solutions_give_the_same_prompts_and_submission(tmp_path):
    tasks = selected(limit=3)
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    for t in tasks:
        (stripped / f"{t.id}.json").write_text(json.dumps(t.to_json(with_solutions=False)))

    with_solutions, without = EchoModel(), EchoModel()
    run_baseline(BaselineConfig(data=DATA, limit=3, out_dir=str(tmp_path / "a")), model=with_solutions, progress=False)
    summary = run_baseline(BaselineConfig(data=str(stripped), out_dir=str(tmp_path / "b")), model=without,
                           progress=False)
    assert with_solutions.prompts == without.prompts
    assert (tmp_path / "a/submission.json").read_text() == (tmp_path / "b/submission.json").read_text()
    assert "task_score" not in summary and "not scored" in format_table(summary)


def test_user_errors_are_raised_before_any_task_runs(tmp_path):
    with pytest.raises(ARCDataError, match="no such file"):
        run_baseline(BaselineConfig(data=str(tmp_path / "missing"), out_dir=str(tmp_path / "o")), progress=False)
    with pytest.raises(BackboneLoadError, match="no such model directory"):
        run_baseline(BaselineConfig(data=DATA, limit=1, out_dir=str(tmp_path / "o"),
                                    backbone=BackboneConfig(name_or_path=str(tmp_path / "no-model"))), progress=False)
    assert not (tmp_path / "o" / "results.jsonl").exists()
    for bad in (dict(attempts=0), dict(augment=-1), dict(temperature=-1.0),
                dict(backbone=BackboneConfig(dtype="float33"))):
        with pytest.raises(BaselineError):
            BaselineConfig(**bad)


def load_script():
    path = Path(__file__).resolve().parents[1] / "experiments" / "run_baseline.py"
    spec = importlib.util.spec_from_file_location("run_baseline_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_runs_the_tiny_random_backbone_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code = load_script().main(["--data", DATA, "--tasks", SMALL_TASK, "--backbone", "tiny-random",
                               "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0 and "warning: random weights in backbone tiny-random" in printed.err
    assert "threads: 1 per process (set by OMP_NUM_THREADS" in printed.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["random_weights"] and summary["kind"] == "causal" and summary["tasks"] == 1
    (record,) = read_jsonl(out / "results.jsonl")
    assert record["tokens_generated"] == summary["tokens_generated"] > 0 and summary["tokens_per_second"] > 0
    for failure in record["test"][0]["parse_failures"]:
        assert failure["reason"]
    read_submission(out / "submission.json", selected([SMALL_TASK]))  # valid whatever the noise


def test_script_exits_2_with_one_line_on_user_errors(tmp_path, capsys):
    script = load_script()
    cases = [(["--data", str(tmp_path / "nowhere")], "no such file or directory"),
             (["--data", DATA, "--limit", "1", "--backbone", str(tmp_path / "no-model")], "no such model directory"),
             (["--data", DATA, "--augment", "-2"], "augment must be >= 0")]
    for extra, message in cases:
        args = ["--backbone", "tiny-random", "--out", str(tmp_path / "o"), *extra]
        assert script.main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_tiny_diffusion_backbone_runs_end_to_end(tmp_path):
    config = BaselineConfig(data=DATA, tasks=(SMALL_TASK,), out_dir=str(tmp_path), max_new_tokens=32,
                            diffusion_block_length=16, diffusion_steps_per_block=4,
                            backbone=BackboneConfig(kind="diffusion", name_or_path="tiny-random-diffusion"))
    summary = run_baseline(config, progress=False)
    assert summary["kind"] == "diffusion" and summary["random_weights"]
    # whole blocks of 16, fewer than 32 per answer when every row has reached EOS earlier
    assert summary["answers"] == 2 and summary["tokens_generated"] % 16 == 0
    assert 2 * 16 <= summary["tokens_generated"] <= 2 * 32
    read_submission(tmp_path / "submission.json", selected([SMALL_TASK]))
    (record,) = read_jsonl(tmp_path / "results.jsonl")
    assert len(record["test"][0]["parse_failures"]) + len(record["test"][0]["votes"]) <= 2
    for grid in record["test"][0]["attempts"]:
        parse_grid(grid_to_text(np.array(grid)))  # attempts are real grids


def test_ctrl_c_leaves_valid_files_and_resume_finishes_the_run(tmp_path):
    tasks = selected(limit=2)

    class InterruptedModel(ScriptedModel):
        def generate_answers(self, prompt, n, **kwargs):
            if self.prompts:
                raise KeyboardInterrupt
            return super().generate_answers(prompt, n, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        run_baseline(BaselineConfig(data=DATA, limit=2, out_dir=str(tmp_path)),
                     model=InterruptedModel(solutions_table(tasks)), progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] and summary["finished_tasks"] == 1 and summary["tasks"] == 2
    assert len(list(read_jsonl(tmp_path / "results.jsonl"))) == 1
    read_submission(tmp_path / "submission.json", tasks)  # the unfinished task has placeholders
    summary = run_baseline(BaselineConfig(data=DATA, limit=2, out_dir=str(tmp_path), resume=True),
                           model=ScriptedModel(solutions_table(tasks)), progress=False)
    assert summary["finished_tasks"] == 2 and summary["task_score"] == 1.0 and summary["interrupted"] is False
