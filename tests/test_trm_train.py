"""TRM training and evaluation end to end on real bundled tasks, with a model small enough for CPU.

What users rely on: a killed run resumes to exactly the weights an uninterrupted run reaches; a
checkpoint is whole or absent; `trm eval` writes a submission that `hybrid-arc score` accepts;
bad configs and checkpoints exit 2 with one line.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import signal_training

from hybrid_pipeline.arc.errors import ARCDataError
from hybrid_pipeline.arc.tasks import load_tasks
from hybrid_pipeline.cli import main
from hybrid_pipeline.config import config_from_dict
from hybrid_pipeline.runs import RunError
from hybrid_pipeline.trm.checkpoint import load_trm
from hybrid_pipeline.trm.evaluate import evaluate_checkpoint
from hybrid_pipeline.training import latest_checkpoint
from hybrid_pipeline.trm.train import TRMTrainConfig, load_training_data, lr_factor, train_trm

TRAIN_IDS = ["0d3d703e", "25ff71a9"]  # every grid at most 6x6: fits an 8x8 canvas with room to translate
EVAL_IDS = ["66e6c45b"]


def tiny_config(out_dir, cache_dir, **overrides) -> TRMTrainConfig:
    values = {
        "model": {"hidden_size": 32, "num_heads": 2, "L_layers": 1, "H_cycles": 2, "L_cycles": 2,
                  "puzzle_emb_len": 2, "halt_max_steps": 2, "forward_dtype": "float32"},
        "data": "arc-agi-1:training", "tasks": TRAIN_IDS,
        "eval_data": "arc-agi-1:evaluation", "eval_tasks": EVAL_IDS,
        "canvas": 8, "num_augmentations": 2, "batch_size": 4, "max_steps": 6, "lr": 1e-3,
        "lr_warmup_steps": 2, "checkpoint_every": 3, "log_every": 2, "keep_checkpoints": 2,
        "out_dir": str(out_dir), "cache_dir": str(cache_dir),
    }
    values.update(overrides)
    return config_from_dict(TRMTrainConfig, values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One uninterrupted 6-step run, shared by the tests that only read its outputs."""
    root = tmp_path_factory.mktemp("trm")
    config = tiny_config(root / "run", root / "cache")
    result = train_trm(config, progress=False)
    return config, result


def _weights(directory):
    return load_file(str(directory / "model.safetensors"))


def test_run_writes_export_checkpoints_log_and_summary(trained):
    config, result = trained
    out = result.final_dir.parent
    assert result.steps == 6
    assert (result.final_dir / "model.safetensors").is_file() and (result.final_dir / "config.json").is_file()
    # Checkpoints every 3 steps, the pointer names the newest, and only `keep_checkpoints` are kept.
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-0000003", "step-0000006"]
    assert latest_checkpoint(out).name == "step-0000006"
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log if "loss" in entry] == [2, 4, 6]
    assert all(len(entry["loss_by_supervision_step"]) == 2 for entry in log if "loss" in entry)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 6 and set(summary["eval"]["pass_at"]) == {"1", "2", "5", "10"}
    # The export loads as a model with the run's canvas and one puzzle row per (task, augmentation).
    model, plan = load_trm(result.final_dir)
    assert model.config.seq_len == 64
    assert plan.num_puzzles == 1 + 2 * (len(TRAIN_IDS) + len(EVAL_IDS))  # row 0 is the blank puzzle


def test_resume_after_kill_reaches_the_same_weights(trained, tmp_path):
    config, result = trained
    killed = tiny_config(tmp_path / "run", tmp_path / "cache")
    # Stop after 4 steps: the last checkpoint is step 3, so step 4 is lost and redone on resume.
    train_trm(killed, progress=False, stop_after=4)
    assert latest_checkpoint(tmp_path / "run").name == "step-0000003"
    resumed = train_trm(killed, resume=True, progress=False)
    assert resumed.steps == 6
    reference, again = _weights(result.final_dir), _weights(resumed.final_dir)
    assert reference.keys() == again.keys()
    for name in reference:
        torch.testing.assert_close(again[name], reference[name], rtol=0, atol=0, msg=name)


def test_compiled_training_reaches_the_eager_weights(trained, tmp_path):
    from torch._dynamo.utils import counters

    config, result = trained
    counters.clear()
    compiled = train_trm(tiny_config(tmp_path / "run", tmp_path / "cache", torch_compile=True), progress=False)
    assert compiled.steps == 6 and counters["stats"]["unique_graphs"] > 0  # it did run compiled code
    # Parameter names are unchanged (the export loads uncompiled), and so are the values, to float
    # rounding: the EMA export, and the raw weights in the last training state.
    eager_state = torch.load(latest_checkpoint(result.final_dir.parent) / "training_state.pt", weights_only=False)
    compiled_state = torch.load(latest_checkpoint(tmp_path / "run") / "training_state.pt", weights_only=False)
    for eager, other in ((_weights(result.final_dir), _weights(compiled.final_dir)),
                         (eager_state["model"], compiled_state["model"])):
        assert eager.keys() == other.keys()
        for name in eager:
            torch.testing.assert_close(other[name], eager[name], rtol=1e-4, atol=1e-5, msg=name)
    # the compiled run evaluated its EMA copy like the eager run did
    assert compiled.eval["pass_at"] == result.eval["pass_at"]


def test_torch_compile_without_a_cpp_compiler_is_a_config_error_naming_the_key(tmp_path, monkeypatch):
    from torch._inductor import config as inductor_config
    from torch._inductor.cpp_builder import cpp_compiler_search

    from hybrid_pipeline.config import ConfigError
    from hybrid_pipeline.trm import TRM, TRMConfig
    from hybrid_pipeline.trm.train import compile_for_training

    monkeypatch.setattr(inductor_config.cpp, "cxx", ("no-such-c++-compiler",))
    cpp_compiler_search.cache_clear()
    try:
        model = TRM(TRMConfig(hidden_size=32, num_heads=2, seq_len=4, puzzle_emb_len=0))
        with pytest.raises(ConfigError, match="torch_compile=true on CPU needs a C\\+\\+ compiler"):
            compile_for_training(model)
        assert model.net._compiled_call_impl is None  # nothing was compiled
    finally:
        cpp_compiler_search.cache_clear()


def test_lr_warms_up_linearly_then_stays_constant_or_follows_a_cosine_to_its_floor(trained):
    # warmup 4, 12 steps: steps 0..3 ramp 1/4..1; the cosine runs over steps 4..12
    assert [lr_factor(s, 4, 12) for s in (0, 1, 3, 4, 11, 50)] == [0.25, 0.5, 1.0, 1.0, 1.0, 1.0]
    assert lr_factor(4, 4, 12, 0.1) == 1.0
    assert lr_factor(8, 4, 12, 0.1) == pytest.approx(0.55)  # half way: the mean of 1 and the floor
    assert lr_factor(12, 4, 12, 0.1) == pytest.approx(0.1)
    assert lr_factor(20, 4, 12, 0.1) == pytest.approx(0.1)  # past max_steps: the floor
    assert lr_factor(0, 0, 10, 0.0) == 1.0  # no warmup
    with pytest.raises(ValueError, match="lr_min_ratio"):
        tiny_config("out", "cache", lr_min_ratio=1.5)
    # the trainer logs the lr it set for the step just taken
    config, result = trained
    log = [json.loads(line) for line in (result.final_dir.parent / "train_log.jsonl").read_text().splitlines()]
    assert [e["lr"] for e in log if "lr" in e] == [
        config.lr * lr_factor(s - 1, config.lr_warmup_steps, config.max_steps, config.lr_min_ratio) for s in (2, 4, 6)]


@pytest.mark.parametrize("pointer, problem", [("{not json", "not a checkpoint pointer"),
                                                ('{"name": "step-0000009"}', "step-0000009/training_state.pt is missing")])
def test_a_broken_latest_pointer_is_refused_not_a_silent_restart(tmp_path, pointer, problem):
    from hybrid_pipeline.trm.train import STATE_NAME

    assert latest_checkpoint(tmp_path) is None  # no pointer: a fresh run
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest.json").write_text(pointer)
    with pytest.raises(RunError, match=problem):
        latest_checkpoint(tmp_path, STATE_NAME)
    with pytest.raises(RunError, match=problem.split("/")[0]):
        train_trm(tiny_config(tmp_path, tmp_path / "cache"), resume=True, progress=False)


def test_training_moves_weights_and_the_ema_export_differs_from_raw(trained):
    config, result = trained
    state = torch.load(latest_checkpoint(result.final_dir.parent) / "training_state.pt", weights_only=False)
    exported = _weights(result.final_dir)
    raw = state["model"]
    name = next(k for k in exported if "qkv" in k)
    assert not torch.equal(exported[name], raw[name])  # EMA weights are exported, not the raw ones


def test_eval_writes_a_submission_that_score_accepts(trained, tmp_path, capsys):
    _, result = trained
    out = tmp_path / "eval"
    code = main(["trm", "eval", "--checkpoint", str(result.final_dir), "--data", "arc-agi-1:evaluation",
                 "--tasks", ",".join(EVAL_IDS + ["00576224"]), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "1 never seen in training" in printed and "per-task pass@2" in printed
    submission = json.loads((out / "submission.json").read_text())
    assert sorted(submission) == sorted(EVAL_IDS + ["00576224"])
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["task_id"]: r["seen_in_training"] for r in results} == {"66e6c45b": True, "00576224": False}
    assert main(["score", "--submission", str(out / "submission.json"), "--data", "arc-agi-1:evaluation",
                 "--tasks", ",".join(EVAL_IDS + ["00576224"])]) == 0


def test_an_interrupted_eval_resumes_to_the_files_of_one_uninterrupted_run(trained, tmp_path, monkeypatch):
    from hybrid_pipeline.trm import evaluate as module

    _, result = trained
    tasks = load_tasks("arc-agi-1:evaluation", ids=EVAL_IDS + ["00576224"]).tasks
    whole = evaluate_checkpoint(result.final_dir, tasks, tmp_path / "whole", batch_size=1, progress=False)
    real, calls = module.vote_predictions, []

    def stop_at_the_second_batch(*args, **kwargs):  # batch_size 1: one task per batch
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    cut = tmp_path / "cut"
    monkeypatch.setattr(module, "vote_predictions", stop_at_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        evaluate_checkpoint(result.final_dir, tasks, cut, batch_size=1, progress=False)
    monkeypatch.setattr(module, "vote_predictions", real)
    stopped = json.loads((cut / "summary.json").read_text())
    assert stopped["interrupted"] and stopped["tasks_done"] == 1 and "task_score" not in stopped
    assert len((cut / "results.jsonl").read_text().splitlines()) == 1
    with pytest.raises(RunError, match="--resume"):
        evaluate_checkpoint(result.final_dir, tasks, cut, batch_size=1, progress=False)
    with pytest.raises(RunError, match="views None -> 1"):
        evaluate_checkpoint(result.final_dir, tasks, cut, max_augmentations=1, resume=True, progress=False)
    resumed = evaluate_checkpoint(result.final_dir, tasks, cut, batch_size=1, resume=True, progress=False)
    assert resumed == whole and not resumed["interrupted"]
    for name in ("results.jsonl", "submission.json"):
        assert (cut / name).read_text() == (tmp_path / "whole" / name).read_text()


def test_eval_does_not_read_test_outputs(trained, tmp_path):
    _, result = trained
    tasks = load_tasks("arc-agi-1:evaluation", ids=EVAL_IDS).tasks
    with_solutions = evaluate_checkpoint(result.final_dir, tasks, tmp_path / "a", progress=False)
    stripped = evaluate_checkpoint(result.final_dir, [t.without_solutions() for t in tasks], tmp_path / "b",
                                   progress=False)
    assert (tmp_path / "a" / "submission.json").read_text() == (tmp_path / "b" / "submission.json").read_text()
    assert "task_score" in with_solutions and "task_score" not in stripped


def test_leakage_between_training_and_evaluation_is_refused_by_default(tmp_path):
    # 070dd51e (ARC-AGI-1 evaluation) has a test pair that is a pair of 40853293 (training).
    config = tiny_config(tmp_path / "run", tmp_path / "cache", tasks=["40853293"], eval_tasks=["070dd51e"],
                         canvas=30)
    with pytest.raises(ARCDataError, match="070dd51e"):
        load_training_data(config)
    excluded = load_training_data(config.__class__(**{**config.__dict__, "leakage": "exclude"}))
    assert excluded.eval_tasks == []


def test_an_evaluation_task_under_a_training_task_id_must_be_that_task(tmp_path, capsys):
    def task(*values):
        return {"train": [{"input": [[v]], "output": [[v + 1]]} for v in values[:-1]],
                "test": [{"input": [[values[-1]]], "output": [[values[-1] + 1]]}]}

    for folder, values in (("train", (1, 3)), ("held_out", (5, 7))):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "abc.json").write_text(json.dumps(task(*values)))
    args = ["trm", "train", f"data={tmp_path / 'train'}", f"eval_data={tmp_path / 'held_out'}",
            f"out_dir={tmp_path / 'run'}", "canvas=8", "num_augmentations=1", "batch_size=2", "max_steps=1"]
    assert main(args) == 2  # otherwise the held-out task would be scored with the training task's embeddings
    assert capsys.readouterr().err.splitlines() == [
        f"error: task abc: two different tasks under one id, in {tmp_path / 'train' / 'abc.json'} and in "
        f"{tmp_path / 'held_out' / 'abc.json'} (an id must name one task: rename one or leave it out of one source)"]
    assert not (tmp_path / "run").exists()


def test_no_training_tasks_trains_on_evaluation_demonstrations_only(tmp_path):
    config = tiny_config(tmp_path / "run", tmp_path / "cache", data=None, tasks=None)
    data = load_training_data(config)
    task = load_tasks("arc-agi-1:evaluation", ids=EVAL_IDS).tasks[0]
    assert len(data.inputs) == 2 * len(task.train)  # demonstrations under 2 augmentations, no test pair


def test_bad_config_and_checkpoint_exit_2_with_one_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  hidden_sise: 64\n")
    assert main(["trm", "train", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hidden_sise" in err[0] and str(config) in err[0]

    assert main(["trm", "train", "max_steps=zero"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1

    broken = tmp_path / "ckpt"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    assert main(["trm", "eval", "--checkpoint", str(broken), "--data", "arc-agi-1:evaluation",
                 "--tasks", EVAL_IDS[0], "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(broken) in err[0]
    assert not (tmp_path / "out" / "submission.json").exists()


def test_two_process_data_parallel_run_on_cpu(tmp_path):
    """`torchrun --nproc_per_node 2` (gloo on CPU): DDP, the puzzle-row gather and per-rank carry state run."""
    import os
    import subprocess
    import sys

    import yaml

    config = tiny_config(tmp_path / "run", tmp_path / "cache")
    from hybrid_pipeline.trm.train import config_to_json

    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config_to_json(config)))
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "hybrid_pipeline.cli", "trm", "train", "--config", str(path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("trained 6 steps") == 1  # only the main process reports
    # each line and each checkpoint written once, by one process; no scratch directory left behind
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [2, 4, 6] and "eval" in log[-1]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "latest.json", "step-0000003", "step-0000006"]
    state = torch.load(latest_checkpoint(tmp_path / "run") / "training_state.pt", weights_only=False)
    assert len(state["ranks"]) == 2  # each process's carry and RNG, for an exact resume
    model, _ = load_trm(tmp_path / "run" / "final")
    assert model.puzzle_emb.weight.abs().sum() > 0  # the sparse puzzle update ran under DDP


def test_a_resume_cuts_the_log_back_to_its_checkpoint_and_refuses_other_settings(tmp_path):
    from dataclasses import replace

    config = tiny_config(tmp_path / "run", tmp_path / "cache")
    train_trm(config, progress=False, stop_after=4)  # logged steps 2 and 4; the checkpoint is step 3
    with pytest.raises(RunError, match="holds a training run; pass --resume"):
        train_trm(config, progress=False)
    saved = (tmp_path / "run" / "train_config.json").read_text()
    with pytest.raises(RunError, match=r"\(batch_size 4 -> 8; lr 0.001 -> 0.005\)"):
        train_trm(replace(config, batch_size=8, lr=5e-3), resume=True, progress=False)
    assert (tmp_path / "run" / "train_config.json").read_text() == saved  # refused before touching a file
    resumed = train_trm(replace(config, log_every=2, time_limit_s=600.0), resume=True, progress=False)
    assert resumed.steps == 6
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log if "loss" in entry] == [2, 4, 6]  # step 4 once, as retrained
    # --overwrite replaces the run: a new one, whose log starts over
    (tmp_path / "run" / "notes.txt").write_text("mine")
    train_trm(replace(config, max_steps=2, checkpoint_every=2), overwrite=True, progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log if "loss" in entry] == [2]
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.is_dir()] == ["step-0000002"]
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # only the run's own files go


def test_sigterm_checkpoints_the_step_exits_143_and_a_resume_reaches_the_uninterrupted_weights(tmp_path):
    """A real SIGTERM to `hybrid-arc trm train`. Compared exactly: the export, the training state and
    every log line; ignored: each line's `elapsed_s` (wall-clock time)."""
    import signal

    import yaml

    def config(name):  # every step logged, no checkpoint before the end but the signal's
        return tiny_config(tmp_path / name, tmp_path / "cache", eval_data=None, eval_tasks=None, max_steps=80,
                           log_every=1, checkpoint_every=80)

    from hybrid_pipeline.trm.train import STATE_NAME, config_to_json

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config_to_json(config("run"))))
    log = tmp_path / "run" / "train_log.jsonl"
    code, err = signal_training(["trm", "train", "--config", str(path)], log, signal.SIGTERM)
    assert code == 143, err[-2000:]
    stopped = json.loads((tmp_path / "run" / "checkpoints" / "latest.json").read_text())["step"]
    assert 1 <= stopped < 80 and not (tmp_path / "run" / "final").exists()
    assert err.strip().splitlines()[-1] == (f"interrupted: checkpoint of step {stopped} written to "
                                            f"{tmp_path / 'run' / 'checkpoints' / f'step-{stopped:07d}'}; rerun "
                                            "with --resume to continue")
    assert [line["step"] for line in map(json.loads, log.read_text().splitlines())] == list(range(1, stopped + 1))

    assert main(["trm", "train", "--config", str(path), "--resume", "--quiet"]) == 0
    whole = train_trm(config("whole"), progress=False)
    for name in ("run", "whole"):
        assert latest_checkpoint(tmp_path / name).name == "step-0000080"
    reference, again = _weights(whole.final_dir), _weights(tmp_path / "run" / "final")
    assert reference.keys() == again.keys() and all(torch.equal(again[k], reference[k]) for k in reference)
    states = [torch.load(latest_checkpoint(tmp_path / name) / STATE_NAME, weights_only=False)["model"]
              for name in ("run", "whole")]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[1])
    lines = [[{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
              for line in (tmp_path / name / "train_log.jsonl").read_text().splitlines()] for name in ("run", "whole")]
    assert lines[0] == lines[1]


@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_at_a_random_step_leaves_a_run_that_resumes_to_the_uninterrupted_weights(tmp_path, seed):
    """kill -9 (no handler runs) after a seeded random number of logged steps, checkpoints every 3:
    the checkpoint the pointer names loads, the log holds no step twice after the resume, and the
    export equals one uninterrupted run's (each line's `elapsed_s` aside)."""
    import random
    import signal

    import yaml

    from hybrid_pipeline.trm.train import config_to_json

    def config(name):
        return tiny_config(tmp_path / name, tmp_path / "cache", eval_data=None, eval_tasks=None, max_steps=40,
                           log_every=1, checkpoint_every=3)

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config_to_json(config("run"))))
    log = tmp_path / "run" / "train_log.jsonl"
    code, _ = signal_training(["trm", "train", "--config", str(path)], log, signal.SIGKILL,
                              steps=random.Random(seed).randint(2, 30))
    assert code == -signal.SIGKILL
    assert main(["trm", "train", "--config", str(path), "--resume", "--quiet"]) == 0
    whole = train_trm(config("whole"), progress=False)
    reference, again = _weights(whole.final_dir), _weights(tmp_path / "run" / "final")
    assert reference.keys() == again.keys() and all(torch.equal(again[k], reference[k]) for k in reference)
    lines = [[{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
              for line in (tmp_path / name / "train_log.jsonl").read_text().splitlines()] for name in ("run", "whole")]
    assert lines[0] == lines[1]


def test_train_exits_2_with_one_line_for_a_fresh_run_into_a_run_or_a_resume_with_other_settings(trained, capsys):
    config, result = trained
    out = result.final_dir.parent
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    args = ["trm", "train", f"out_dir={out}", f"cache_dir={config.cache_dir}", "--quiet"]
    assert main(args) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {out} holds a training run; pass --resume to continue it, --overwrite to replace it, or choose "
        "another out_dir"]
    assert main([*args, "--resume"]) == 2  # the paper's defaults are other settings than the tiny run's
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {out}: cannot resume with other settings than the run there (")
    assert "(model.hidden_size 32 -> 512; " in line and "; batch_size 4 -> 768; " in line
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files  # refused before any write
    with pytest.raises(SystemExit) as usage:  # argparse's own usage error
        main([*args, "--resume", "--overwrite"])
    assert usage.value.code == 2 and "not allowed with argument --resume" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_to_a_two_process_run_checkpoints_once_and_a_resume_reaches_the_same_weights(tmp_path):
    """torchrun passes SIGTERM to both processes; they agree on the step, write one checkpoint and one
    line saying so. Compared exactly: the export and every log line but its `elapsed_s`."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from hybrid_pipeline.trm.train import config_to_json

    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}

    def torchrun(name, *flags, **popen):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config_to_json(tiny_config(
            tmp_path / name, tmp_path / "cache", eval_data=None, eval_tasks=None, max_steps=60, log_every=1,
            checkpoint_every=60))))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                   "-m", "hybrid_pipeline.cli", "trm", "train", "--config", str(path), "--quiet", *flags]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **popen)

    log = tmp_path / "run" / "train_log.jsonl"
    child = torchrun("run")
    try:
        while not (log.exists() and log.read_text().strip()) and child.poll() is None:
            time.sleep(0.01)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
    stopped = json.loads((tmp_path / "run" / "checkpoints" / "latest.json").read_text())["step"]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["latest.json", f"step-{stopped:07d}"]
    assert err.count(f"interrupted: checkpoint of step {stopped} written to") == 1, err[-3000:]
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == list(range(1, stopped + 1))

    for run in (torchrun("run", "--resume"), torchrun("whole")):
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-3000:]
    reference, again = (load_file(str(tmp_path / name / "final" / "model.safetensors")) for name in ("whole", "run"))
    assert reference.keys() == again.keys() and all(torch.equal(again[k], reference[k]) for k in reference)
    lines = [[{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
              for line in (tmp_path / name / "train_log.jsonl").read_text().splitlines()] for name in ("run", "whole")]
    assert lines[0] == lines[1]
