"""The hybrid on the offline tiny backbones: shapes, where gradients go (and do not), prompts reaching the
TRM, both layouts (the prompt's stored keys and values give the uncached forward's loss), cached prompt
states, save/load of the trained parts and the processor (and of checkpoints written before either),
prediction, the parameter report."""

from __future__ import annotations

import dataclasses
import json
import shutil

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
from hybrid_pipeline.processor import HybridProcessor
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
LAYOUTS = pytest.mark.parametrize("kind,layout", [("causal", "prompt_first"), ("causal", "prefix_first"),
                                                  ("diffusion", "prefix_first")])


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


@pytest.mark.parametrize("kind,refiner,layout", [("causal", "attention", "prompt_first"),
                                                 ("causal", "slot", "prompt_first"),
                                                 ("causal", "attention", "prefix_first"),
                                                 ("diffusion", "attention", "prefix_first"),
                                                 ("diffusion", "slot", "prefix_first")])
def test_gradients_reach_trained_parts_and_never_the_backbone(backbones, kind, refiner, layout):
    model = make(backbones, kind, refiner, layout=layout).train()
    assert model.config.layout == layout
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


@pytest.mark.parametrize("kind,refiner,layout", [("causal", "attention", "prompt_first"),
                                                 ("causal", "attention", "prefix_first"),
                                                 ("diffusion", "slot", "prefix_first")])
def test_lm_loss_alone_trains_refiner_trm_and_text_adapter(backbones, kind, refiner, layout):
    # The original's refiner fed generation under no_grad: with grid and halt weights 0 nothing learned.
    model = make(backbones, kind, refiner, layout=layout, grid_weight=0.0, halt_weight=0.0).train()
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


@LAYOUTS
def test_precomputed_prompt_states_give_the_same_loss_and_gradients(backbones, kind, layout):
    model = make(backbones, kind, layout=layout).train()
    batch = batch_for(model)
    computed = model(batch, generator=seeded())
    computed.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    states = model.encode_prompt(batch["prompt_ids"], batch["prompt_mask"])
    B, T = batch["prompt_ids"].shape
    assert states.hidden.shape == (B, T, 64) and not states.hidden.requires_grad
    if layout == "prompt_first":  # 2 layers, keys and values, 4 heads of 16
        assert states.kv.shape == (2, 2, B, 4, T, 16) and not states.kv.requires_grad
    else:
        assert states.kv is None
    stored = {"prompt_hidden": states.hidden, **({"prompt_kv": states.kv} if states.kv is not None else {})}
    cached = model({**batch, **stored}, generator=seeded())
    assert torch.equal(cached.loss, computed.loss) and torch.equal(cached.logits, computed.logits)
    cached.loss.backward()
    assert set(grads) == {n for n, p in model.named_parameters() if p.grad is not None}
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters() if p.grad is not None)
    # the prompt forward is skipped: a batch without prompt ids still trains
    without_ids = {k: v for k, v in {**batch, **stored}.items() if k != "prompt_ids"}
    if layout == "prompt_first":
        assert torch.equal(model(without_ids, generator=seeded()).loss, computed.loss)


def test_prompt_first_loss_from_stored_keys_and_values_equals_one_uncached_forward(backbones):
    """[prompt ; prefix ; answer] in one forward, no cache, scored by hand, against the model's loss,
    which runs [prefix ; answer] after the prompt's stored keys and values (left-padded prompts,
    right-padded answers)."""
    model = make(backbones, layout="prompt_first").eval()
    batch = batch_for(model)
    out = model(batch)
    bb = model.backbone
    ids, mask = batch["prompt_ids"], batch["prompt_mask"]
    answer, answer_mask = batch["answer_ids"], batch["answer_mask"]
    T, A = ids.shape[1], answer.shape[1]
    prefix = out.prefix_embeds.detach()
    embeds = torch.cat([bb.embed(ids), prefix, bb.embed(answer)], dim=1)  # [B,T+K+A,D]
    full_mask = torch.cat([mask, torch.ones(2, K, dtype=torch.long), answer_mask], dim=1)
    from hybrid_pipeline.backbones.causal import positions

    with torch.no_grad():
        logits = bb.model(inputs_embeds=embeds, attention_mask=full_mask, position_ids=positions(full_mask),
                          use_cache=False).logits  # [B,T+K+A,V]
        kv = bb.prompt_states(ids, mask, with_kv=True).kv
        after = bb.forward_after_prompt(kv, mask, embeds[:, T:], full_mask[:, T:]).logits  # [B,K+A,V]
    real = full_mask[:, T:].bool()
    torch.testing.assert_close(after[real], logits[:, T:][real], rtol=1e-5, atol=1e-5)
    predicting = logits[:, T + K - 1:T + K + A - 1]  # position T+K+j-1 predicts answer token j
    scored = answer_mask.bool()
    assert not scored.all()
    expected = torch.nn.functional.cross_entropy(predicting[scored], answer[scored])
    torch.testing.assert_close(out.lm_loss, expected, rtol=1e-5, atol=1e-6)


def test_layouts_default_by_backbone_kind_and_prompt_first_is_refused_for_diffusion(backbones):
    assert HybridConfig().layout == "prompt_first"
    assert HybridConfig(backbone=BackboneConfig(kind="diffusion")).layout == "prefix_first"
    with pytest.raises(ValueError, match="prompt_first needs a causal backbone"):
        HybridConfig(backbone=BackboneConfig(kind="diffusion"), layout="prompt_first")
    with pytest.raises(ValueError, match="layout must be one of prompt_first, prefix_first"):
        HybridConfig(layout="prompt_last")
    with pytest.raises(ValueError, match="no reusable prompt keys and values"):
        backbones["diffusion"].prompt_states(torch.tensor([[5, 6]]), with_kv=True)
    # the layouts place the prefix differently, so they score the same answer differently
    first = make(backbones, layout="prompt_first").eval()
    batch = batch_for(first)
    other = make(backbones, layout="prefix_first").eval()
    assert not torch.allclose(first(batch).lm_loss, other(batch).lm_loss)
    torch.testing.assert_close(first(batch).grid_loss, other(batch).grid_loss)


def test_save_and_load_round_trip_trained_parts_only(backbones, tmp_path):
    model = make(backbones, refiner="slot", use_vae=True, vae_latent_dim=8, feedback=True).train()
    batch = {**batch_for(model), "feedback": problem_counts([[Problem("shape", "test 0")], []])}
    model(batch, generator=seeded()).loss.backward()
    torch.optim.AdamW(model.trainable_parameters(), lr=1e-2).step()  # weights no longer the seeded init
    model.eval()
    model.save_pretrained(tmp_path / "hybrid")
    files = sorted(p.name for p in (tmp_path / "hybrid").iterdir())
    assert files == ["config.json", "model.safetensors", "processor_config.json", "tokenizer.json",
                     "tokenizer_config.json"]
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


def test_processor_saves_beside_the_model_and_loads_without_the_backbone(backbones, tmp_path):
    model = make(backbones)
    model.save_pretrained(tmp_path / "m")
    processor = HybridProcessor.from_pretrained(tmp_path / "m")  # its own saved tokenizer, no LM loaded
    assert processor.canvas == CANVAS and processor.tokenizer is not backbones["causal"].tokenizer
    ours, theirs = model.encode(PROMPTS, GRIDS_IN, test_outputs=GRIDS_OUT), processor(PROMPTS, GRIDS_IN, test_outputs=GRIDS_OUT)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    texts, grids, errors = processor.decode_answers(torch.tensor([processor.tokenizer("43\n21\n")["input_ids"][1:]
                                                                  + [processor.tokenizer.eos_token_id, 50]]))
    assert texts == ["43\n21\n"] and grids[0].tolist() == [[4, 3], [2, 1]] and errors == [None]
    trm_grids, trm_errors = processor.decode_grids(theirs["labels"])
    assert [g.tolist() for g in trm_grids] == [g.tolist() for g in GRIDS_OUT] and trm_errors == [None, None]
    config = tmp_path / "m" / "processor_config.json"
    config.write_text(json.dumps({"processor_class": "HybridProcessor", "canvas": 8}))
    with pytest.raises(CheckpointError, match=r"processor_config.json: canvas 8, but config.json has a 4x4"):
        HybridModel.from_pretrained(tmp_path / "m", backbone=model.backbone)
    config.unlink()
    with pytest.raises(CheckpointError, match="processor_config.json: missing"):
        HybridProcessor.from_pretrained(tmp_path / "m")


def test_checkpoint_from_before_layouts_and_processors_loads_prefix_first(backbones, tmp_path):
    """A save_pretrained directory of the earlier format: config.json without `layout` (its model was
    trained with the prefix in front of the prompt), no processor files."""
    model = make(backbones, layout="prefix_first").eval()
    model.save_pretrained(tmp_path / "new")
    old = tmp_path / "old"
    old.mkdir()
    for name in ("model.safetensors",):
        shutil.copy(tmp_path / "new" / name, old / name)
    values = json.loads((tmp_path / "new" / "config.json").read_text())
    del values["layout"]
    (old / "config.json").write_text(json.dumps(values))
    loaded = HybridModel.from_pretrained(old, backbone=backbones["causal"]).eval()
    assert loaded.config.layout == "prefix_first" and loaded.config == model.config
    assert loaded.processor.canvas == CANVAS
    batch = batch_for(model)
    assert torch.equal(loaded(batch).loss, model(batch).loss)
    assert loaded.predict(batch, max_new_tokens=6).answer_texts == model.predict(batch, max_new_tokens=6).answer_texts


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


def test_causal_lm_loss_covers_answer_tokens_only_prefix_first(backbones):
    model = make(backbones, layout="prefix_first").eval()
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


@LAYOUTS
def test_predict_reads_no_answers(backbones, kind, layout):
    model = make(backbones, kind, layout=layout)
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


def test_hybrid_proposer_encodes_a_task_once_and_each_attempt_gives_the_uncached_prediction(backbones):
    """prompt_first: the task part of the prompt runs through the backbone once per test input; each
    attempt runs only its feedback after the stored keys and values, and predicts what a model given
    the same prompt tokens from scratch predicts."""
    from hybrid_pipeline.arc.tasks import Example, Task
    from hybrid_pipeline.arc.text import task_to_prompt
    from planner.proposers import HybridProposer, prompt_parts, prompt_with_feedback
    from planner.trace import Attempt
    from verifier import Verdict

    model = make(backbones, layout="prompt_first").eval()
    proposer = HybridProposer(model)
    task = Task("t", (Example(np.array(GRIDS_IN[0]), np.array(GRIDS_OUT[0])),), (Example(np.array(GRIDS_IN[0])),))
    proposer.propose(task, 0, ())
    wrong = Attempt("hybrid", 0, np.array([[7]]), None, None, Verdict(False, 0.1, (Problem("shape", "test 0"),)),
                    "the answer should be 2x2, not 1x1", 0.0)
    second = proposer._predict(task, 0, [wrong])
    assert proposer.task_part_encodings == 1
    head, tail = prompt_parts(task, 0, [wrong])
    assert head + tail == prompt_with_feedback(task, 0, [wrong]) and head == task_to_prompt(task).removesuffix("Output:\n")
    assert tail.startswith("Earlier attempts") and "Feedback: the answer should be 2x2" in tail
    tokenizer = model.processor.tokenizer
    ids = torch.tensor([tokenizer(head)["input_ids"] + tokenizer(tail, add_special_tokens=False)["input_ids"]])
    batch = {**model.encode([head + tail], [task.test[0].input]), "prompt_ids": ids, "prompt_mask": torch.ones_like(ids)}
    scratch = model.predict(batch, **model.backbone.stopping_kwargs())
    assert second.answer_texts == scratch.answer_texts and torch.equal(second.trm_tokens, scratch.trm_tokens)
    torch.testing.assert_close(second.prefix_embeds, scratch.prefix_embeds, rtol=1e-5, atol=1e-6)
    # another test input (another task part) is encoded anew
    proposer._predict(Task("u", task.train, (Example(np.array(GRIDS_IN[1])),)), 0, ())
    assert proposer.task_part_encodings == 2
