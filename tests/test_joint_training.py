"""Joint training of the hybrid end to end on real bundled tasks, with a model small enough for a CPU.

What users rely on: a run writes its log, checkpoints and an export that `HybridModel.from_pretrained`
loads; a stopped run resumes to exactly the weights an uninterrupted run reaches; the backbone never
changes; cached hidden states train the same model as recomputed ones; held-out tasks never train;
bad input exits 2 with one line before any step; the same script runs as two DDP processes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import signal_training

from hybrid_pipeline.arc.errors import ARCDataError
from hybrid_pipeline.arc.grids import sample_augmentations
from hybrid_pipeline.arc.scoring import read_submission
from hybrid_pipeline.arc.tasks import load_tasks
from hybrid_pipeline.arc.text import task_to_prompt
from hybrid_pipeline.backbones import BackboneConfig, load_backbone
from hybrid_pipeline.config import config_from_dict, config_to_dict
from hybrid_pipeline.hybrid import HybridModel
from hybrid_pipeline.joint import JointTrainConfig, build_joint_data, cache_prompt_hidden, load_joint_tasks, train_joint
from hybrid_pipeline.training import latest_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TRAIN_IDS = ["0d3d703e", "25ff71a9"]  # 3x3 grids: they fit a 4x4 canvas; 25ff71a9 has 2 test inputs
EVAL_IDS = ["66e6c45b"]  # 4x4, ARC-AGI-1 evaluation


def values(out_dir, cache_dir, **overrides) -> dict:
    base = {
        "model": {"trm": {"hidden_size": 32, "num_heads": 2, "L_layers": 1, "H_cycles": 2, "L_cycles": 2,
                          "puzzle_emb_len": 1, "puzzle_emb_ndim": 0, "halt_max_steps": 2, "forward_dtype": "float32"},
                  "text_to_latent": {"compress_dim": 32, "num_heads": 2},
                  "latent_to_text": {"num_queries": 4, "mlp_hidden": 64}},
        "data": "arc-agi-1:training", "tasks": TRAIN_IDS, "eval_data": "arc-agi-1:evaluation", "eval_tasks": EVAL_IDS,
        "canvas": 4, "num_augmentations": 2, "batch_size": 4, "max_steps": 6, "lr": 1e-3, "warmup_steps": 2,
        "log_every": 2, "checkpoint_every": 3, "eval_augmentations": 2, "eval_max_new_tokens": 21,
        "out_dir": str(out_dir), "cache_dir": str(cache_dir),
    }
    base.update(overrides)
    return base


def tiny_config(out_dir, cache_dir, *, layout: str | None = None, **overrides) -> JointTrainConfig:
    settings = values(out_dir, cache_dir, **overrides)
    if layout is not None:
        settings["model"]["layout"] = layout
    return config_from_dict(JointTrainConfig, settings)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One uninterrupted 6-step run, shared by the tests that only read its outputs."""
    root = tmp_path_factory.mktemp("joint")
    return train_joint(tiny_config(root / "run", root / "cache"), progress=False), root


def test_run_writes_log_checkpoints_and_an_export_that_loads(trained):
    result, root = trained
    out = root / "run"
    assert result.steps == 6 and result.final_dir == out / "final"
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [2, 4, 6]
    assert all(np.isfinite(e["loss"]) and e["grad_norm"] is not None for e in log if "loss" in e)
    (final_eval,) = [e["eval"] for e in log if "eval" in e]
    assert set(final_eval) == {"trm", "lm"} and final_eval["trm"]["tasks"] == 1

    # checkpoints every 3 steps, the pointer names the newest; only trained weights are in them
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest.json", "step-0000003", "step-0000006"]
    assert latest_checkpoint(out).name == "step-0000006"
    saved = load_file(str(out / "checkpoints" / "step-0000006" / "model.safetensors"))
    assert saved and not any(k.startswith("backbone.") for k in saved)

    loaded = HybridModel.from_pretrained(result.final_dir)  # loads tiny-random by name
    assert loaded.config.canvas == 4
    reference = result.model.trainable_state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in loaded.trainable_state_dict().items())

    # both submissions are valid Kaggle files for the held-out tasks; the summary reports both scores
    held_out = load_tasks("arc-agi-1:evaluation", ids=EVAL_IDS).tasks
    for source in ("trm", "lm"):
        read_submission(out / "eval" / f"{source}_submission.json", held_out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 6 and set(summary["eval"]) == {"trm", "lm"}
    assert summary["eval"]["lm"]["test_outputs"] == 1


def test_backbone_is_bit_identical_after_training_and_the_trained_parts_moved(trained):
    result, _ = trained
    fresh = load_backbone(BackboneConfig()).state_dict()
    after = result.model.backbone.state_dict()
    assert fresh.keys() == after.keys() and all(torch.equal(fresh[k], after[k]) for k in fresh)
    initial = HybridModel.from_config(result.model.config).trainable_state_dict()
    trained_state = result.model.trainable_state_dict()
    for part in ("text_to_latent.", "trm.", "refiner."):
        assert any(not torch.equal(initial[k], trained_state[k]) for k in initial if k.startswith(part)), part


def test_resume_after_a_stop_reaches_bit_identical_weights(trained, tmp_path):
    result, root = trained
    config = tiny_config(tmp_path / "run", root / "cache")
    # Stop after 4 steps: the last checkpoint is step 3, so step 4 is lost and redone on resume.
    train_joint(config, progress=False, stop_after=4)
    assert latest_checkpoint(tmp_path / "run").name == "step-0000003"
    assert not (tmp_path / "run" / "final").exists()
    resumed = train_joint(config, resume=True, progress=False)
    assert resumed.steps == 6
    reference, again = load_file(str(result.final_dir / "model.safetensors")), load_file(str(resumed.final_dir / "model.safetensors"))
    assert reference.keys() == again.keys()
    for name in reference:
        assert torch.equal(again[name], reference[name]), name
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [2, 4, 6]  # step 4, logged before the stop, is cut and logged once again
    same = {k: v for k, v in resumed.last_log.items() if k != "elapsed_s"}
    assert same == {k: v for k, v in result.last_log.items() if k != "elapsed_s"}


@pytest.mark.parametrize("layout", ["prompt_first", "prefix_first"])
def test_cached_prompt_states_train_the_same_model(tmp_path, layout):
    """prompt_first caches the prompt's keys and values beside its hidden states; prefix_first the
    hidden states only."""
    cache = tmp_path / "cache"
    # one prompt per batch: the cache holds exactly what the backbone computes for it, bit for bit
    runs = [train_joint(tiny_config(tmp_path / name, cache, batch_size=1, max_steps=3, eval_data=None,
                                    cache_hidden_states=cached, layout=layout), progress=False)
            for name, cached in (("plain", False), ("cached", True))]
    plain, cached = (r.model.trainable_state_dict() for r in runs)
    assert all(torch.equal(plain[k], cached[k]) for k in plain)
    assert runs[0].last_log["loss"] == runs[1].last_log["loss"]
    assert len(list(cache.glob("joint-hidden-*"))) == 1

    # a padded batch recomputes with other shapes and RoPE angles: the same up to rounding
    config = tiny_config(tmp_path / "x", cache, cache_hidden_states=True, layout=layout)
    model = runs[1].model
    assert model.config.layout == layout
    train_tasks, eval_tasks = load_joint_tasks(config)
    data = build_joint_data(config, train_tasks, eval_tasks, model.backbone.tokenizer)
    data.hidden, data.hidden_dtype, data.kv_shape = cache_prompt_hidden(model, data.prompts, cache, progress=False)
    assert len(list(cache.glob("joint-hidden-*"))) == 1  # loaded, not rebuilt
    rows = [0, 3, 5, 8]
    batch = data.batch(rows, model)
    assert batch["prompt_mask"].sum(1).unique().numel() > 1  # prompts of different lengths: padding
    recomputed = model.encode_prompt(batch["prompt_ids"], batch["prompt_mask"])
    real = batch["prompt_mask"].bool()
    torch.testing.assert_close(batch["prompt_hidden"][real], recomputed.hidden[real], rtol=1e-5, atol=1e-5)
    if layout == "prompt_first":  # 2 layers, keys and values, 4 heads of 16, at the real positions
        assert data.kv_shape == (2, 2, 4, 16)
        stored = batch["prompt_kv"].permute(2, 4, 0, 1, 3, 5)  # [B,T,layers,2,H,hd]
        torch.testing.assert_close(stored[real], recomputed.kv.permute(2, 4, 0, 1, 3, 5)[real], rtol=1e-5, atol=1e-5)
    else:
        assert data.kv_shape is None and "prompt_kv" not in batch
    seeded = [torch.Generator().manual_seed(0) for _ in range(2)]
    with_cache = model(batch, generator=seeded[0]).loss
    without = model({k: v for k, v in batch.items() if k not in ("prompt_hidden", "prompt_kv")},
                    generator=seeded[1]).loss
    torch.testing.assert_close(with_cache, without, rtol=1e-5, atol=1e-6)


def test_rows_come_from_training_tasks_with_every_demonstration(tmp_path):
    config = tiny_config(tmp_path / "run", tmp_path / "cache")
    train_tasks, eval_tasks = load_joint_tasks(config)
    assert [t.id for t in eval_tasks] == EVAL_IDS
    data = build_joint_data(config, train_tasks, eval_tasks, load_backbone(BackboneConfig()).tokenizer)
    # per augmentation: every test pair, and every demonstration asked from the others (leave-one-out)
    per_task = {t.id: len(t.test) + len(t.train) for t in train_tasks}
    assert len(data) == 2 * sum(per_task.values())
    assert sorted(set(data.task_ids)) == sorted(TRAIN_IDS)
    # the identity view of a task comes first: its rows' grids are the task's own
    task = train_tasks[0]
    first = data.task_ids.index(task.id)
    assert data.prompts[first] == task_to_prompt(task)
    assert np.array_equal(data.inputs[first], task.test[0].input)
    assert np.array_equal(data.outputs[first], task.test[0].output)
    # a leave-one-out row: demonstration 0 is the question, the other demonstrations are in the prompt
    held = data.prompts.index(task_to_prompt(type(task)(task.id, task.train[1:], task.train[:1])))
    assert np.array_equal(data.inputs[held], task.train[0].input)
    assert np.array_equal(data.outputs[held], task.train[0].output)
    # and another augmentation's rows are that augmentation's grids
    aug = sample_augmentations(2, np.random.default_rng(config.seed))[1]
    assert any(np.array_equal(data.outputs[i], aug.apply(task.test[0].output)) for i in range(len(data)))


def test_leakage_between_training_and_held_out_tasks_is_refused(tmp_path):
    # 070dd51e (ARC-AGI-1 evaluation) has a test pair that is a pair of 40853293 (training).
    config = tiny_config(tmp_path / "run", tmp_path / "cache", tasks=["40853293"], eval_tasks=["070dd51e"],
                         canvas=30)
    with pytest.raises(ARCDataError, match="070dd51e"):
        load_joint_tasks(config)
    _, held_out = load_joint_tasks(tiny_config(tmp_path / "run", tmp_path / "cache", tasks=["40853293"],
                                               eval_tasks=["070dd51e"], canvas=30, leakage="exclude"))
    assert held_out == []
    # a held-out split of the training set itself: those tasks leave the training tasks
    train, held_out = load_joint_tasks(tiny_config(tmp_path / "run", tmp_path / "cache",
                                                   eval_data="arc-agi-1:training", eval_tasks=[TRAIN_IDS[0]]))
    assert [t.id for t in train] == TRAIN_IDS[1:] and [t.id for t in held_out] == TRAIN_IDS[:1]


def load_script():
    path = ROOT / "experiments" / "run_joint_training.py"
    spec = importlib.util.spec_from_file_location("run_joint_training_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_input_exits_2_with_one_line_before_training(trained, tmp_path, capsys):
    _, root = trained
    main = load_script().main
    config = tmp_path / "run.yaml"
    out = tmp_path / "out"
    import yaml

    config.write_text(yaml.safe_dump(values(out, root / "cache")))
    cases = [
        (["max_stepz=3"], "max_stepz"),
        (["data=/nonexistent/arc"], "/nonexistent/arc"),
        (["model.backbone.name_or_path=/nonexistent/llama"], "/nonexistent/llama"),
        (["cache_hidden_states=true", "model.backbone.lora=true"], "LoRA"),
        (["trainable_parts=[trm, decoder]"], "decoder"),
    ]
    for overrides, named in cases:
        assert main(["--config", str(config), *overrides]) == 2, overrides
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and named in err[0], (overrides, err)
        assert not out.exists(), overrides  # nothing was written: no step ran

    # a resume with a config that would make it another run is refused, naming the key
    trained_run = str(root / "run")
    assert main(["--config", str(config), f"out_dir={trained_run}", "lr=0.5", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "(lr 0.001 -> 0.5)" in err[0]
    assert main(["--config", str(config), f"out_dir={trained_run}", "model.trm.L_cycles=3", "--resume"]) == 2
    assert "(model.trm.L_cycles 2 -> 3)" in capsys.readouterr().err  # the nested key itself, not the whole section

    # a pointer to a checkpoint that is gone: resuming would silently restart, so it is an error
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "latest.json").write_text('{"name": "step-0000009"}')
    assert main(["--config", str(config), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "step-0000009" in err[0]


def test_two_process_data_parallel_run_on_cpu(tmp_path):
    """`torchrun --nproc_per_node 2` (gloo on CPU): DDP runs the joint step, saves and exports once."""
    import yaml

    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(values(tmp_path / "run", tmp_path / "cache", max_steps=2, checkpoint_every=2,
                                          eval_augmentations=1)))
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(ROOT / "experiments" / "run_joint_training.py"), "--config", str(path), "--quiet"],
                         capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("trained 2 steps") == 1 and "2 processes" in run.stdout  # only the main process reports
    assert run.stdout.count("threads: 1 per process (set by OMP_NUM_THREADS") == 1
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert sorted(p.name for p in checkpoint.glob("random_states_*.pkl")) == ["random_states_0.pkl", "random_states_1.pkl"]
    # each line and each checkpoint written once, by one process; no scratch directory left behind
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [2] and set(log[0]["eval"]) == {"trm", "lm"}
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["latest.json", "step-0000002"]
    HybridModel.from_pretrained(tmp_path / "run" / "final")


def test_lora_trains_adapters_but_never_the_base_weights(tmp_path):
    config = tiny_config(tmp_path / "run", tmp_path / "cache", max_steps=2, eval_data=None,
                         model={**values(None, None)["model"], "backbone": {"lora": True, "lora_r": 2,
                                                                            "lora_dropout": 0.0}})
    result = train_joint(config, progress=False)
    fresh = load_backbone(BackboneConfig(lora=True, lora_r=2, lora_dropout=0.0)).model.state_dict()
    after = result.model.backbone.model.state_dict()
    base = [k for k in fresh if "lora_" not in k]
    assert base and all(torch.equal(fresh[k], after[k]) for k in base)
    assert any(not torch.equal(fresh[k], after[k]) for k in fresh if "lora_B" in k)
    assert any("lora_" in k for k in load_file(str(latest_checkpoint(tmp_path / "run") / "model.safetensors")))
    loaded = HybridModel.from_pretrained(result.final_dir)
    lora = {k: v for k, v in loaded.backbone.model.state_dict().items() if "lora_" in k}
    assert lora and all(torch.equal(v, after[k]) for k, v in lora.items())
    assert config_to_dict(loaded.config.backbone)["lora"] is True


def test_joint_train_on_the_command_line_refuses_overwrites_and_resumes(trained, tmp_path, capsys):
    """`hybrid-arc joint train`: exit 2 with one line for a fresh run into a run and for a resume with
    other settings (nothing touched); --overwrite replaces the run; --resume with nothing to resume
    starts fresh, saying so in one line."""
    import yaml

    from hybrid_pipeline.cli import main

    _, root = trained
    config, out = tmp_path / "run.yaml", tmp_path / "run"
    config.write_text(yaml.safe_dump(values(out, root / "cache", max_steps=2, checkpoint_every=2, eval_data=None)))
    args = ["joint", "train", "--config", str(config), "--quiet"]
    assert main([*args, "--resume"]) == 0
    captured = capsys.readouterr()
    random = ("warning: random weights in backbone tiny-random: this run checks the pipeline, its answers and "
              "scores are noise; set model.backbone.name_or_path to a trained LM for trained models")
    assert captured.err.splitlines() == [f"nothing to resume in {out}: starting a fresh run", random]
    assert f"trained 2 steps; trained parts exported to {out / 'final'}" in captured.out
    assert "threads: 1 per process (set by OMP_NUM_THREADS;" in captured.out  # conftest's; not a setting:
    assert json.loads((out / "summary.json").read_text())["threads"]["torch_threads"] == 1  # in the summary
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    for extra, expected in (([], f"error: {out} holds a training run; pass --resume to continue it, --overwrite "
                                 "to replace it, or choose another out_dir"),
                            (["--resume", "lr=0.5", "max_steps=3"],
                             f"error: {out}: cannot resume with other settings than the run there (max_steps 2 -> 3; "
                             "lr 0.001 -> 0.5); resume with the same values or use a new out_dir")):
        assert main([*args, *extra]) == 2, extra
        assert capsys.readouterr().err.splitlines() == [expected]  # refused before the model loads: no warning
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files  # refused before any write

    assert main([*args, "--overwrite", "max_steps=3", "log_every=1", "checkpoint_every=3"]) == 0
    assert capsys.readouterr().err.splitlines() == [f"overwriting the training run in {out}", random]
    assert [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest.json", "step-0000003"]
    assert main([*args, "--resume", "max_steps=3", "log_every=1", "checkpoint_every=3"]) == 0  # done: export again
    assert [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()] == [1, 2, 3]
    HybridModel.from_pretrained(out / "final")

    # A run recorded before `model.layout` existed was trained prefix_first: resumed as such, not refused for the gap.
    saved = json.loads((out / "train_config.json").read_text())
    del saved["model"]["layout"]
    (out / "train_config.json").write_text(json.dumps(saved))
    assert main([*args, "--resume", "max_steps=3", "log_every=1", "checkpoint_every=3"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {out}: cannot resume with other settings than the run there (model.layout 'prefix_first' -> "
        "'prompt_first'); resume with the same values or use a new out_dir")
    assert main([*args, "--resume", "max_steps=3", "log_every=1", "checkpoint_every=3", "model.layout=prefix_first"]) == 0


def test_sigterm_to_joint_train_checkpoints_the_step_and_a_resume_reaches_the_uninterrupted_weights(trained, tmp_path):
    """A real SIGTERM to `hybrid-arc joint train`: exit 143 with a checkpoint of the step it stopped
    at and the log up to it; `--resume` then exports the weights of one uninterrupted run, and the
    same log lines (each line's `elapsed_s`, wall-clock time, aside)."""
    import signal

    import yaml

    from hybrid_pipeline.cli import main

    _, root = trained
    settings = dict(max_steps=30, log_every=1, checkpoint_every=30, eval_data=None)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(values(tmp_path / "run", root / "cache", **settings)))
    log = tmp_path / "run" / "train_log.jsonl"
    code, err = signal_training(["joint", "train", "--config", str(path)], log, signal.SIGTERM)
    assert code == 143, err[-2000:]
    stopped = json.loads((tmp_path / "run" / "checkpoints" / "latest.json").read_text())["step"]
    assert 1 <= stopped < 30 and not (tmp_path / "run" / "final").exists()
    assert err.strip().splitlines()[-1].startswith(f"interrupted: checkpoint of step {stopped} written to ")
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == list(range(1, stopped + 1))

    assert main(["joint", "train", "--config", str(path), "--resume", "--quiet"]) == 0
    whole = train_joint(tiny_config(tmp_path / "whole", root / "cache", **settings), progress=False)
    reference = load_file(str(whole.final_dir / "model.safetensors"))
    again = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    assert reference.keys() == again.keys() and all(torch.equal(again[k], reference[k]) for k in reference)
    lines = [[{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
              for line in (tmp_path / name / "train_log.jsonl").read_text().splitlines()] for name in ("run", "whole")]
    assert lines[0] == lines[1]
