"""The hybrid on the offline tiny backbones: shapes, where gradients go (and do not), prompts reaching the
TRM, cached hidden states, save/load of the trained parts only, prediction, the parameter report."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from adapters import (
    LatentToTextConfig,
    SlotRefinerConfig,
    TextToLatentAdapter,
    TextToLatentConfig,
)
from adapters.feedback import FeedbackEmbedderConfig, problem_counts
from hybrid_pipeline.arc.text import GRID_ALPHABET
from hybrid_pipeline.backbones import BackboneConfig, load_backbone
from hybrid_pipeline.backbones.causal import CausalBackbone
from hybrid_pipeline.backbones.tiny import build_tiny_llama
from hybrid_pipeline.hybrid import HybridConfig, HybridModel
from hybrid_pipeline.trm import TRMConfig
from hybrid_pipeline.trm.checkpoint import CheckpointError
from verifier import Problem

CANVAS, D, K = 4, 32, 4
GRIDS_IN = [np.array([[1, 2], [3, 4]]), np.array([[5, 0, 5]])]
GRIDS_OUT = [np.array([[4, 3], [2, 1]]), np.array([[0, 5, 0]])]
PROMPTS = ["Example 1\nInput:\n12\n34\nOutput:\n43\n21\n\nTest\nInput:\n12\n34\nOutput:\n",
           "Test\nInput:\n505\nOutput:\n"]


@pytest.fixture(scope="module")
def backbones():
    return {"causal": load_backbone(BackboneConfig()),
            "diffusion": load_backbone(BackboneConfig(kind="diffusion", name_or_path="tiny-random-diffusion"))}


def tiny_config(kind="causal", refiner="attention", **overrides) -> HybridConfig:
    values = {
        "backbone": BackboneConfig(kind=kind, name_or_path="tiny-random" if kind == "causal" else "tiny-random-diffusion"),
        # the paper's H_cycles 3: the first two rounds run without grad, the pitfall the adapter must survive
        "trm": TRMConfig(hidden_size=D, num_heads=2, L_layers=1, H_cycles=3, L_cycles=2, seq_len=CANVAS * CANVAS,
                         puzzle_emb_len=2, halt_max_steps=2, forward_dtype="float32"),
        "text_to_latent": TextToLatentConfig(compress_dim=32, num_heads=2),
        "refiner": refiner,
        "latent_to_text": LatentToTextConfig(num_queries=K, mlp_hidden=64),
        "slot_refiner": SlotRefinerConfig(num_slots=K, max_steps=2, mlp_hidden=64),
        "feedback_embedder": FeedbackEmbedderConfig(kind_dim=8, mlp_hidden=16),
        "supervision_steps": 2,
    }
    return HybridConfig(**{**values, **overrides})


def make(backbones, kind="causal", refiner="attention", **overrides) -> HybridModel:
    return HybridModel.from_config(tiny_config(kind, refiner, **overrides), backbone=backbones[kind])


def batch_for(model, prompts=PROMPTS) -> dict:
    return model.encode(prompts, GRIDS_IN, test_outputs=GRIDS_OUT)


def seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def grad_norm(module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


BOTH = pytest.mark.parametrize("kind,refiner", [("causal", "attention"), ("causal", "slot"),
                                                ("diffusion", "attention"), ("diffusion", "slot")])


@BOTH
def test_forward_shapes_and_loss_parts(backbones, kind, refiner):
    model = make(backbones, kind, refiner)
    batch = batch_for(model)
    out = model(batch, generator=seeded())
    B = len(PROMPTS)
    assert batch["inputs"].shape == batch["labels"].shape == (B, CANVAS * CANVAS)
    assert out.logits.shape == (B, CANVAS * CANVAS, 12) and out.q_halt_logits.shape == (B,)
    assert out.prefix_embeds.shape == (B, K, 64)
    for part in (out.loss, out.lm_loss, out.grid_loss, out.halt_loss, out.kl):
        assert part.shape == () and torch.isfinite(part)
    cfg = model.config
    expected = cfg.lm_weight * out.lm_loss + cfg.grid_weight * out.grid_loss + cfg.halt_weight * out.halt_loss
    torch.testing.assert_close(out.loss, expected)
    assert out.lm_loss > 0 and out.grid_loss > 0 and out.kl == 0
    assert out.metrics["prefix_tokens"] == K and ("refiner_steps" in out.metrics) == (refiner == "slot")


@BOTH
def test_gradients_reach_trained_parts_and_never_the_backbone(backbones, kind, refiner):
    model = make(backbones, kind, refiner).train()
    assert not model.backbone.model.training  # frozen backbone stays in eval mode (no dropout)
    before_backbone = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    before = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    out = model(batch_for(model), generator=seeded())
    out.loss.backward()
    for part in (model.text_to_latent, model.trm, model.refiner):
        assert grad_norm(part) > 0, type(part).__name__
    assert all(not p.requires_grad and p.grad is None for p in model.backbone.parameters())
    # an optimiser handed every parameter, frozen ones included, still leaves the backbone alone
    torch.optim.AdamW(model.parameters(), lr=1e-2).step()
    after_backbone = model.backbone.state_dict()
    assert all(torch.equal(before_backbone[k], after_backbone[k]) for k in before_backbone)
    after = model.trainable_state_dict()
    for prefix in ("text_to_latent.", "trm.", "refiner."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)), prefix


@pytest.mark.parametrize("kind,refiner", [("causal", "attention"), ("diffusion", "slot")])
def test_lm_loss_alone_trains_refiner_trm_and_text_adapter(backbones, kind, refiner):
    # The original's refiner fed generation under no_grad: with grid and halt weights 0 nothing learned.
    model = make(backbones, kind, refiner, grid_weight=0.0, halt_weight=0.0).train()
    out = model(batch_for(model), generator=seeded())
    torch.testing.assert_close(out.loss, out.lm_loss)
    out.loss.backward()
    assert grad_norm(model.refiner) > 0
    assert grad_norm(model.trm) > 0
    # through the conditioning, at H_cycles 3; "sum" reaches the z_H and the z_L half of the output
    project = model.text_to_latent.project.weight.grad  # [2D, C]
    assert project[:D].abs().sum() > 0 and project[D:].abs().sum() > 0
    assert model.trm.q_head.weight.grad is None or model.trm.q_head.weight.grad.abs().sum() == 0


def test_prompts_change_the_trm_logits(backbones):
    model = make(backbones).eval()
    a = model(batch_for(model)).logits
    swapped = model(batch_for(model, prompts=[PROMPTS[0].replace("43\n21", "11\n11"), PROMPTS[1]])).logits
    assert not torch.allclose(a[0], swapped[0])
    torch.testing.assert_close(a[1], swapped[1])  # row 1's prompt did not change


@pytest.mark.parametrize("kind", ["causal", "diffusion"])
def test_precomputed_hidden_states_give_the_same_loss(backbones, kind):
    model = make(backbones, kind).train()
    batch = batch_for(model)
    computed = model(batch, generator=seeded())
    hidden = model.encode_prompt(batch["prompt_ids"], batch["prompt_mask"])
    assert hidden.shape == (*batch["prompt_ids"].shape, 64) and not hidden.requires_grad
    cached = model({**batch, "prompt_hidden": hidden}, generator=seeded())
    assert torch.equal(cached.loss, computed.loss) and torch.equal(cached.logits, computed.logits)


def test_save_and_load_round_trip_trained_parts_only(backbones, tmp_path):
    model = make(backbones, refiner="slot", use_vae=True, vae_latent_dim=8, feedback=True).train()
    batch = {**batch_for(model), "feedback": problem_counts([[Problem("shape", "test 0")], []])}
    model(batch, generator=seeded()).loss.backward()
    torch.optim.AdamW(model.trainable_parameters(), lr=1e-2).step()  # weights no longer the seeded init
    model.eval()
    model.save_pretrained(tmp_path / "hybrid")
    files = sorted(p.name for p in (tmp_path / "hybrid").iterdir())
    assert files == ["config.json", "model.safetensors"]
    saved = load_file(tmp_path / "hybrid" / "model.safetensors")
    assert not any(k.startswith("backbone.") for k in saved)
    assert {k.split(".")[0] for k in saved} == {"text_to_latent", "vae", "trm", "refiner", "feedback"}

    loaded = HybridModel.from_pretrained(tmp_path / "hybrid").eval()  # loads tiny-random by name
    assert loaded.config == model.config
    first, second = model(batch), loaded(batch)
    assert first.prefix_embeds.shape[1] == K + 1  # the feedback token
    assert torch.equal(first.logits, second.logits) and torch.equal(first.prefix_embeds, second.prefix_embeds)
    assert torch.equal(first.loss, second.loss)
    # overwriting goes through a scratch directory: nothing else is left beside the target
    model.save_pretrained(tmp_path / "hybrid")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hybrid"]


def test_lora_weights_save_through_peft_and_load_back(tmp_path):
    config = tiny_config(backbone=BackboneConfig(lora=True, lora_r=2, lora_dropout=0.0))
    model = HybridModel.from_config(config).train()
    report = model.parameter_report().to_dict()
    assert report["backbone"]["trainable"] > 0 and report["backbone"]["frozen"] > 0
    batch = batch_for(model)
    model(batch, generator=seeded()).loss.backward()
    lora = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in n for n in lora)
    torch.optim.AdamW(model.trainable_parameters(), lr=1e-2).step()  # lora_B leaves zero: the adapter matters
    model.eval()
    model.save_pretrained(tmp_path / "lora")
    assert (tmp_path / "lora" / "lora" / "adapter_model.safetensors").is_file()
    loaded = HybridModel.from_pretrained(tmp_path / "lora").eval()
    assert torch.equal(model(batch).loss, loaded(batch).loss)
    plain = HybridModel.from_pretrained(tmp_path / "lora").eval()
    with torch.no_grad():  # without the saved adapter the answer loss differs, so the adapter was restored
        for n, p in plain.backbone.named_parameters():
            if "lora_B" in n:
                p.zero_()
    assert not torch.equal(plain(batch).lm_loss, loaded(batch).lm_loss)


def test_width_mismatch_fails_at_build_naming_both(backbones, tmp_path):
    model = make(backbones)
    narrow = TextToLatentAdapter(dataclasses.replace(model.config.text_to_latent, llm_hidden=48))
    with pytest.raises(ValueError, match=r"48.*64|64.*48"):
        HybridModel(model.backbone, narrow, model.trm, model.refiner)
    model.save_pretrained(tmp_path / "m")
    # adapters trained on a 64-wide backbone, loaded beside a 32-wide one
    tokenizer = backbones["causal"].tokenizer
    small = CausalBackbone(build_tiny_llama(tokenizer, hidden_size=32), tokenizer, BackboneConfig(), True)
    with pytest.raises(ValueError, match=r"64.*32|32.*64"):
        HybridModel.from_pretrained(tmp_path / "m", backbone=small)
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: missing"):
        HybridModel.from_pretrained(tmp_path / "m", backbone=model.backbone)


def test_causal_lm_loss_covers_answer_tokens_only(backbones):
    model = make(backbones).eval()
    batch = batch_for(model)
    out = model(batch)
    ids = torch.cat([batch["prompt_ids"], batch["answer_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["answer_mask"]], dim=1)
    logits = model.backbone.forward_with_prefix(out.prefix_embeds, ids, mask).logits  # [B,K+T+A,V]
    T, A = batch["prompt_ids"].shape[1], batch["answer_ids"].shape[1]
    predicting = logits[:, K + T - 1:K + T + A - 1]  # position K+T+j-1 predicts answer token j
    real = batch["answer_mask"].bool()  # right padding of the shorter answer is not scored
    assert not real.all()
    expected = torch.nn.functional.cross_entropy(predicting[real], batch["answer_ids"][real])
    torch.testing.assert_close(out.lm_loss, expected)


@pytest.mark.parametrize("kind", ["causal", "diffusion"])
def test_predict_reads_no_answers(backbones, kind):
    model = make(backbones, kind)
    full = batch_for(model)
    blind = model.encode(PROMPTS, GRIDS_IN)
    assert "labels" not in blind and "answer_ids" not in blind
    a = model.predict(full, max_new_tokens=12, generator=seeded())
    b = model.predict(blind, max_new_tokens=12, generator=seeded())
    assert a.trm_tokens.shape == (2, CANVAS * CANVAS) and a.q_halt_logits.shape == (2,)
    assert torch.equal(a.trm_tokens, b.trm_tokens) and a.answer_texts == b.answer_texts
    assert len(a.trm_grids) == len(a.trm_errors) == len(a.answer_grids) == len(a.answer_errors) == 2
    for grid, error in zip(a.trm_grids + a.answer_grids, a.trm_errors + a.answer_errors):
        assert (grid is None) != (error is None)
    assert all(set(text) <= set(GRID_ALPHABET) and len(text) <= 12 for text in a.answer_texts)
    assert model.training  # restored after predicting


def test_parameter_report_counts_every_part(backbones):
    model = make(backbones, use_vae=True, vae_latent_dim=8)
    report = model.parameter_report()
    parts = report.to_dict()
    assert parts["backbone"] == {"trainable": 0, "frozen": sum(p.numel() for p in model.backbone.parameters())}
    assert parts["trm"]["trainable"] == sum(p.numel() for p in model.trm.parameters())
    assert report.trainable == sum(p.numel() for p in model.trainable_parameters()) + model.trm.puzzle_emb.weight.numel()
    assert {"text_to_latent", "vae", "refiner"} <= set(parts) and "feedback" not in parts
    assert str(report).splitlines()[0].split() == ["part", "trainable", "frozen"]


def test_vae_kl_enters_the_loss(backbones):
    model = make(backbones, use_vae=True, vae_latent_dim=8, kl_weight=0.5).train()
    out = model(batch_for(model), generator=seeded())
    assert out.kl > 0
    cfg = model.config
    torch.testing.assert_close(out.loss, out.lm_loss + cfg.grid_weight * out.grid_loss
                               + cfg.halt_weight * out.halt_loss + 0.5 * out.kl)
    out.loss.backward()
    assert grad_norm(model.vae) > 0


def test_tiny_yaml_config_runs_a_real_task(backbones, arc1_eval):
    from hybrid_pipeline.arc.text import task_to_prompt
    from hybrid_pipeline.config import load_config

    config = load_config(HybridConfig, "experiments/configs/hybrid_tiny.yaml", ["trm.H_cycles=2", "trm.L_cycles=2"])
    model = HybridModel.from_config(config, backbone=backbones["causal"])
    task = next(t for t in arc1_eval if len(task_to_prompt(t)) < 600)
    batch = model.encode([task_to_prompt(task)], [task.test[0].input], test_outputs=[task.test[0].output])
    out = model(batch, generator=seeded())
    assert out.logits.shape == (1, 900, 12) and torch.isfinite(out.loss)


def test_supervision_steps_past_halt_max_steps_are_refused():
    from hybrid_pipeline.hybrid import HybridConfig
    from hybrid_pipeline.trm.config import TRMConfig

    with pytest.raises(ValueError, match="halt_max_steps"):
        HybridConfig(trm=TRMConfig(halt_max_steps=2), supervision_steps=3)
