"""Test-time training of the language model (hybrid_pipeline/backbones/ttt.py): a LoRA adapter per
task, trained on its demonstrations only, that lowers their loss and leaves the base weights bit for
bit as they were; the baseline, the planner's llm proposer and the CLI on top of it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hybrid_pipeline.arc.files import read_jsonl
from hybrid_pipeline.arc.tasks import Example, Task, load_tasks
from hybrid_pipeline.arc.text import grid_to_text, task_to_prompt
from hybrid_pipeline.backbones import BackboneConfig, load_backbone
from hybrid_pipeline.backbones.answer import BackboneAnswerModel, adapted
from hybrid_pipeline.backbones.ttt import TTTConfig, demonstration_loss, fit_task_adapter, lora_adapter, ttt_rows
from hybrid_pipeline.baseline import BaselineConfig, run_baseline
from hybrid_pipeline.cli import main

DATA = "arc-agi-1:evaluation"
SMALL_TASK = "66e6c45b"  # the shortest prompt of the split: 2 demonstrations of 4x4 grids
FAST = TTTConfig(steps=30, lr=3e-3)


def flip_task(task_id: str = "flip", seed: int = 0, demonstrations: int = 3) -> Task:
    rng = np.random.default_rng(seed)

    def pair() -> Example:
        grid = rng.integers(0, 10, size=(3, 3)).astype(np.uint8)
        return Example(grid, np.fliplr(grid).copy())

    return Task(task_id, tuple(pair() for _ in range(demonstrations)), (pair(),))


@pytest.fixture(scope="module")
def causal():
    return load_backbone(BackboneConfig())


def weights(backbone) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in backbone.model.state_dict().items()}


def greedy(backbone, task: Task) -> str:
    model = BackboneAnswerModel(backbone)
    return model.generate_answers(task_to_prompt(task), 1, temperature=0.0, max_new_tokens=16, seed=0)[0]


def test_rows_ask_each_demonstration_from_the_others_and_never_hold_a_test_output():
    task = flip_task()
    rows = ttt_rows(task, TTTConfig(steps=1))
    assert len(rows) == 3
    prompt, answer = rows[1]
    assert answer == grid_to_text(task.train[1].output)
    expected = Task(task.id, (task.train[0], task.train[2]), (Example(task.train[1].input),))
    assert prompt == task_to_prompt(expected)
    assert rows == ttt_rows(task.without_solutions(), TTTConfig(steps=1))
    assert len(ttt_rows(task, TTTConfig(steps=1, augment=2))) == 9  # the original and 2 augmentations
    assert ttt_rows(flip_task(demonstrations=1), TTTConfig(steps=1)) == []


def test_demonstration_loss_falls_over_ttt_steps_and_the_base_weights_stay_bit_identical(causal):
    task = flip_task()
    before, answer_before = weights(causal), greedy(causal, task)
    loss_before = demonstration_loss(causal, task, FAST)
    adapter = fit_task_adapter(causal, task, FAST)
    assert len(adapter.losses) == 30 and adapter.rows == 3
    with adapter.installed(causal):
        loss_with = demonstration_loss(causal, task, FAST)
        assert any("lora" in name for name, _ in causal.model.named_modules())
    assert loss_with < 0.9 * loss_before  # 4.68 -> 4.03 on this task
    after = weights(causal)
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not any("lora" in name for name, _ in causal.model.named_modules())
    assert not any(p.requires_grad for p in causal.model.parameters())
    assert demonstration_loss(causal, task, FAST) == loss_before
    assert greedy(causal, task) == answer_before


def test_training_is_a_function_of_the_seed_and_the_task(causal):
    task = flip_task()
    config = TTTConfig(steps=3, lr=3e-3)
    a, b = fit_task_adapter(causal, task, config), fit_task_adapter(causal, task, config)
    assert a.losses == b.losses and all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    c = fit_task_adapter(causal, task, TTTConfig(steps=3, lr=3e-3, seed=1))
    assert not all(torch.equal(a.state[k], c.state[k]) for k in a.state)
    stripped = fit_task_adapter(causal, task.without_solutions(), config)
    assert stripped.losses == a.losses  # the test output plays no part


def test_zero_steps_and_single_demonstration_tasks_train_nothing(causal):
    assert fit_task_adapter(causal, flip_task(), TTTConfig(steps=0)).state is None
    lonely = fit_task_adapter(causal, flip_task(demonstrations=1), FAST)
    assert lonely.state is None and lonely.record() == {"steps": 0, "rows": 0, "seconds": 0.0,
                                                        "skipped": "fewer than two demonstrations"}
    with adapted(object(), flip_task(), TTTConfig(steps=0)) as nothing:  # any model: nothing is asked of it
        assert nothing is None
    with pytest.raises(TypeError, match="cannot train at test time"):
        with adapted(object(), flip_task(), FAST):
            pass


def test_a_backbone_loaded_with_lora_keeps_its_own_adapter_active_and_unchanged():
    backbone = load_backbone(BackboneConfig(lora=True))
    for name, parameter in backbone.model.named_parameters():
        if "lora_B" in name:  # a trained-looking adapter, so that it changes the answers
            torch.nn.init.normal_(parameter, std=0.1, generator=torch.Generator().manual_seed(0))
    task = flip_task()
    own = {k: v.clone() for k, v in backbone.model.state_dict().items() if "lora" in k}
    loss_before = demonstration_loss(backbone, task, FAST)
    adapter = fit_task_adapter(backbone, task, TTTConfig(steps=5, lr=3e-3))
    assert adapter.losses[-1] < adapter.losses[0]
    state = backbone.model.state_dict()
    assert all(torch.equal(own[k], state[k]) for k in own)
    assert backbone.model.active_adapters == ["default"] and list(backbone.model.peft_config) == ["default"]
    assert demonstration_loss(backbone, task, FAST) == loss_before


def test_diffusion_backbone_trains_on_masked_answer_positions_and_is_restored():
    backbone = load_backbone(BackboneConfig(kind="diffusion", name_or_path="tiny-random-diffusion"))
    before = weights(backbone)
    adapter = fit_task_adapter(backbone, flip_task(), TTTConfig(steps=4, lr=3e-3))
    assert len(adapter.losses) == 4 and all(np.isfinite(adapter.losses))
    after = weights(backbone)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_4bit_backbone_trains_through_prepare_model_for_kbit_training():
    pytest.importorskip("bitsandbytes")
    backbone = load_backbone(BackboneConfig(load_in_4bit=True))
    task = flip_task()
    first = fit_task_adapter(backbone, task, FAST)  # prepares the model (float32 casts), then trains
    assert first.losses[-1] < first.losses[0]
    assert not any("lora" in name for name, _ in backbone.model.named_modules())
    assert any(type(m).__name__ == "Linear4bit" for m in backbone.model.modules())
    loss = demonstration_loss(backbone, task, FAST)
    with first.installed(backbone):
        assert demonstration_loss(backbone, task, FAST) < loss
    assert demonstration_loss(backbone, task, FAST) == loss  # once prepared, a task leaves no trace


def test_an_adapter_on_the_backbone_is_removed_when_the_block_fails(causal):
    before = weights(causal)
    with pytest.raises(RuntimeError, match="boom"):
        with lora_adapter(causal, FAST, seed=0):
            raise RuntimeError("boom")
    assert not any("lora" in name for name, _ in causal.model.named_modules())
    assert all(torch.equal(before[k], v) for k, v in weights(causal).items())


def test_answer_model_trains_once_per_task_and_reuses_the_adapter(causal):
    model = BackboneAnswerModel(causal)
    task, other = flip_task(), flip_task("other", seed=1)
    with model.adapted_to(task, FAST) as first:
        answer = model.generate_answers(task_to_prompt(task), 1, temperature=0.0, max_new_tokens=16, seed=0)
    seconds = model.ttt_seconds
    with model.adapted_to(task.without_solutions(), FAST) as again:  # the same content: nothing trains
        assert again is first
        assert answer == model.generate_answers(task_to_prompt(task), 1, temperature=0.0, max_new_tokens=16, seed=0)
    assert model.ttt_seconds == seconds
    with model.adapted_to(other, FAST) as third:
        assert third is not first and model.ttt_seconds > seconds


def test_baseline_with_ttt_records_the_training_and_ignores_test_outputs(tmp_path):
    (task,) = load_tasks(DATA, ids=[SMALL_TASK]).raise_if_problems().tasks
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    (stripped / f"{task.id}.json").write_text(json.dumps(task.to_json(with_solutions=False)))
    ttt = TTTConfig(steps=3, lr=3e-3)
    runs = {}
    for name, data in (("with", DATA), ("without", str(stripped))):
        config = BaselineConfig(data=data, tasks=(SMALL_TASK,), out_dir=str(tmp_path / name), max_new_tokens=24,
                                attempts=1, ttt=ttt)
        runs[name] = run_baseline(config, progress=False)
    (a,), (b,) = (list(read_jsonl(tmp_path / n / "results.jsonl")) for n in ("with", "without"))
    assert a["test"][0]["attempts"] == b["test"][0]["attempts"]
    assert a["ttt"]["steps"] == 3 and a["ttt"]["rows"] == 2 and a["ttt"]["loss_first"] == b["ttt"]["loss_first"]
    assert runs["with"]["ttt_steps"] == 3 and runs["with"]["ttt_seconds"] > 0


def test_baseline_with_zero_steps_is_the_run_without_test_time_training(tmp_path):
    results = []
    for name, ttt in (("default", TTTConfig()), ("zero", TTTConfig(steps=0, lr=1.0, rank=2))):
        config = BaselineConfig(data=DATA, tasks=(SMALL_TASK,), out_dir=str(tmp_path / name), max_new_tokens=24,
                                attempts=1, ttt=ttt)
        run_baseline(config, progress=False)
        (record,) = read_jsonl(tmp_path / name / "results.jsonl")
        assert "ttt" not in record
        results.append(record["test"])
    assert results[0] == results[1]


def test_cli_baseline_ttt_steps_is_a_recorded_setting(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["baseline", "--data", DATA, "--tasks", SMALL_TASK, "--backbone", "tiny-random", "--attempts", "1",
            "--max-new-tokens", "16", "--out", out]
    assert main([*args, "--ttt-steps", "2", "--ttt-lr", "0.003"]) == 0
    assert "2 test-time training steps per task" in capsys.readouterr().out
    (record,) = read_jsonl(tmp_path / "run" / "results.jsonl")
    assert record["ttt"]["steps"] == 2
    assert json.loads((tmp_path / "run" / "run.json").read_text())["settings"]["ttt"]["steps"] == 2
    assert main([*args, "--ttt-steps", "3", "--ttt-lr", "0.003", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "ttt" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as usage:
        main([*args, "--ttt-steps", "-1"])
    assert usage.value.code == 2 and "expected an integer >= 0" in capsys.readouterr().err


def test_llm_proposer_answers_with_the_tasks_adapter_and_predict_learns_only_the_pairs_given(causal):
    from planner.proposers import LLMProposer

    proposer = LLMProposer(BackboneAnswerModel(causal), max_new_tokens=16, ttt=FAST)
    plain = LLMProposer(BackboneAnswerModel(causal), max_new_tokens=16)
    task = flip_task()
    proposal = proposer.propose(task, 0, ())
    assert proposal.text != plain.propose(task, 0, ()).text  # the adapter changed the answer
    trained = proposer.model.ttt_seconds
    proposer.propose(task, 0, ())
    assert proposer.model.ttt_seconds == trained  # a retry reuses the task's adapter
    pairs = [(ex.input, ex.output) for ex in task.train[:2]]
    proposer.predict(pairs, task.train[2].input)
    assert proposer.model.ttt_seconds > trained  # other demonstrations, another adapter


@pytest.mark.slow
def test_cli_plan_passes_ttt_steps_to_the_llm_proposer_and_records_it(tmp_path, capsys):
    out = str(tmp_path / "plan")
    args = ["plan", "--data", DATA, "--tasks", SMALL_TASK, "--proposers", "llm", "--attempts", "1",
            "--no-consistency-checks", "--quiet", "--out", out]
    assert main([*args, "--ttt-steps", "1"]) == 0
    assert json.loads((tmp_path / "plan" / "run.json").read_text())["settings"]["ttt_steps"] == 1
    capsys.readouterr()
    assert main([*args, "--ttt-steps", "2", "--resume"]) == 2
    assert "ttt_steps" in capsys.readouterr().err
