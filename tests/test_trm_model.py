"""TRM model: architecture facts, recursion, ACT carry semantics, hybrid conditioning, persistence."""

import json

import pytest
import torch

from hybrid_pipeline.trm import TRM, TRMConfig
from hybrid_pipeline.trm.evaluate import (exact_accuracy_at_halt, exact_accuracy_by_step, exact_right_by_step,
                                          first_halt_step)

B, L, D = 2, 16, 32


def tiny(**overrides) -> TRMConfig:
    values = dict(hidden_size=D, num_heads=2, L_layers=2, H_cycles=3, L_cycles=2, seq_len=L, puzzle_emb_len=2,
                  num_puzzle_identifiers=4, halt_max_steps=3, forward_dtype="float32")
    return TRMConfig(**{**values, **overrides})


def make_model(seed=0, **overrides) -> TRM:
    torch.manual_seed(seed)
    model = TRM(tiny(**overrides))
    with torch.no_grad():  # non-trivial puzzle vectors and Q head, which start as constants
        model.puzzle_emb.weight.normal_()
        model.q_head.weight.normal_(0, 0.2)
    return model


def make_batch(seed=1, batch=B) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"inputs": torch.randint(0, 12, (batch, L), generator=g),
            "puzzle_identifiers": torch.randint(0, 4, (batch,), generator=g),
            "labels": torch.randint(0, 12, (batch, L), generator=g)}


def step(model, batch, **kwargs):
    return model(model.initial_carry(batch), batch, **kwargs)


# ---- architecture -------------------------------------------------------------------------------

def test_parameter_count_at_paper_arc_config():
    with torch.device("meta"):
        model = TRM(TRMConfig())
    assert sum(p.numel() for p in model.parameters()) == 6_829_058
    assert model.net.layers[0].mlp.down.weight.shape == (512, 1536)
    assert model.net.layers[0].attn.qkv.weight.shape == (1536, 512)
    # the puzzle table is trained by its own optimiser: a buffer, outside the count
    assert model.puzzle_emb.weight.shape == (1, 512)
    assert "puzzle_emb.weight" in dict(model.named_buffers())
    assert all(p.ndim for p in model.parameters())


def test_initialisation_matches_paper():
    torch.manual_seed(0)
    model = TRM(tiny(hidden_size=256, num_heads=4, vocab_size=2000))
    assert torch.all(model.q_head.weight == 0) and torch.all(model.q_head.bias == -5)
    assert torch.all(model.puzzle_emb.weight == 0)
    # truncated normal with the *requested* std (1/sqrt(hidden)), cut at 2 std
    emb = model.embed_tokens.weight
    assert emb.std().item() == pytest.approx(256**-0.5, rel=0.02)
    assert emb.abs().max().item() <= 2 * 256**-0.5 * 1.15
    assert model.H_init.std().item() == pytest.approx(1.0, rel=0.2)
    assert not any(n in dict(model.named_parameters()) for n in ("H_init", "L_init"))
    assert model.net.layers[0].attn.qkv.bias is None and model.lm_head.bias is None


def test_outputs_shapes_and_dtypes():
    model = make_model().eval()
    batch = make_batch()
    carry, out = step(model, batch)
    assert out["logits"].shape == (B, L, 12)
    assert out["q_halt_logits"].shape == (B,) and out["q_halt_logits"].dtype == torch.float32
    assert out["z_H"].shape == out["z_L"].shape == (B, L + 2, D)
    assert carry.z_H.shape == (B, L + 2, D) and not carry.z_H.requires_grad
    assert out["steps"].tolist() == [1, 1]


def test_bfloat16_forward_keeps_float32_weights_and_q():
    model = make_model(forward_dtype="bfloat16").eval()
    carry, out = step(model, make_batch())
    assert out["logits"].dtype == torch.bfloat16 and carry.z_H.dtype == torch.bfloat16
    assert out["q_halt_logits"].dtype == torch.float32
    assert model.lm_head.weight.dtype == torch.float32


def test_only_last_h_cycle_has_grad():
    model = make_model(H_cycles=3, L_cycles=2).train()
    calls = []
    model.net.register_forward_hook(lambda mod, args, out: calls.append(out.requires_grad))
    step(model, make_batch())
    assert len(calls) == 3 * (2 + 1)
    assert calls == [False] * 6 + [True] * 3


def test_separate_h_level_uses_second_network_for_z_H():
    model = make_model(separate_h_level=True).train()
    l_calls, h_calls = [], []
    model.net.register_forward_hook(lambda *a: l_calls.append(1))
    model.h_net.register_forward_hook(lambda *a: h_calls.append(1))
    _, out = step(model, make_batch())
    assert len(l_calls) == 3 * 2 and len(h_calls) == 3
    out["logits"].float().sum().backward()
    assert model.h_net.layers[0].mlp.down.weight.grad.abs().sum() > 0
    assert model.net.layers[0].mlp.down.weight.grad.abs().sum() > 0


def test_gradients_reach_every_trainable_weight_and_batch_puzzle_rows():
    model = make_model().train()
    batch = make_batch()
    _, out = step(model, batch)
    (out["logits"].float().square().mean() + out["q_halt_logits"].sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    rows = model.puzzle_emb.rows
    assert rows.grad is not None and rows.grad.abs().sum() > 0
    assert torch.equal(model.puzzle_emb.ids, batch["puzzle_identifiers"])


# ---- ACT carry ----------------------------------------------------------------------------------

def test_eval_runs_exactly_halt_max_steps_and_carry_continues():
    model = make_model().eval()
    batch = make_batch()
    carry = model.initial_carry(batch)
    logits = []
    for expected_step in (1, 2, 3):
        carry, out = model(carry, batch)
        assert out["steps"].tolist() == [expected_step] * B
        assert out["halted"].tolist() == [expected_step == 3] * B
        logits.append(out["logits"])
    assert not torch.allclose(logits[0], logits[1])  # the carry feeds the next step


def test_initial_carry_latents_take_no_memory_and_are_replaced():
    model = make_model().eval()
    batch = make_batch()
    carry = model.initial_carry(batch)
    assert carry.z_H.shape == carry.z_L.shape == (B, model.config.total_len, model.config.hidden_size)
    assert carry.z_H.untyped_storage().nbytes() == carry.z_H.element_size()  # one broadcast element
    _, out = model(carry, batch)
    # whatever the latents of a halted carry hold, the first step resets them
    carry.z_H, carry.z_L = torch.randn_like(carry.z_H), torch.randn_like(carry.z_L)
    _, again = model(carry, batch)
    assert torch.equal(out["logits"], again["logits"])


def test_first_halt_step_is_the_first_positive_q_or_else_the_last_step():
    q_halt = torch.tensor([[-1.0, 2.0, -1.0, 0.0],  # (steps, B): a column per sequence
                           [3.0, -1.0, -1.0, 0.0],
                           [5.0, 4.0, -1.0, 0.0]])
    assert first_halt_step(q_halt).tolist() == [1, 0, 2, 2]  # 0 is not "> 0"
    right = torch.tensor([[False, True, True, False],
                          [True, False, True, False],
                          [False, False, False, True]])
    # answers at step 1, 0, 2 (wrong), 2; always answering at step 0 would give 0.5, at the last 0.25
    assert exact_accuracy_at_halt(right, q_halt) == 0.75


def test_exact_right_by_step_is_each_step_of_the_carry_in_order():
    model = make_model().eval()
    batch = make_batch()
    labels = batch["labels"].clone()
    labels[0] = model(model.initial_carry(batch), batch)[1]["logits"][0].argmax(-1).detach()  # row 0 right at step 1
    right, q_halt = exact_right_by_step(model, batch["inputs"], labels, batch["puzzle_identifiers"])
    carry, expected_q = model.initial_carry(batch), []
    for _ in range(model.config.halt_max_steps):
        carry, out = model(carry, batch)
        expected_q.append(out["q_halt_logits"])
    assert torch.equal(q_halt, torch.stack(expected_q))
    assert not torch.equal(q_halt[0], q_halt[1])  # so a step out of order would show
    assert right[0].tolist() == [True, False]


@pytest.mark.parametrize("bias, step_taken", [(50.0, 0), (-50.0, -1)])
def test_accuracy_at_halt_answers_where_the_q_head_says_halt(bias, step_taken):
    model = make_model().eval()
    batch = make_batch()
    with torch.no_grad():
        first_answer = model(model.initial_carry(batch), batch)[1]["logits"].argmax(-1)
        model.q_head.weight.zero_()
        model.q_head.bias.fill_(bias)  # every sequence says halt at step 1, or never
    labels = first_answer  # right at step 1 by construction (cells it predicts as PAD are ignored)
    right, q_halt = exact_right_by_step(model, batch["inputs"], labels, batch["puzzle_identifiers"])
    assert right.shape == q_halt.shape == (model.config.halt_max_steps, B)
    by_step = exact_accuracy_by_step(model, batch["inputs"], labels, batch["puzzle_identifiers"])
    assert by_step == right.float().mean(1).tolist()
    assert by_step[0] == 1.0
    assert by_step[-1] < 1.0  # later steps rewrite the first answer, so the two cases differ
    assert exact_accuracy_at_halt(right, q_halt) == by_step[step_taken]


def test_halted_sequences_restart_with_new_data():
    model = make_model().eval()
    first, second = make_batch(1), make_batch(2)
    carry = model.initial_carry(first)
    for _ in range(3):
        carry, _ = model(carry, first)
    carry.halted = torch.tensor([True, False])
    carry, out = model(carry, second)
    assert out["steps"].tolist() == [1, 4]
    assert torch.equal(carry.current_data["inputs"][0], second["inputs"][0])
    assert torch.equal(carry.current_data["inputs"][1], first["inputs"][1])
    # a restarted sequence computes exactly what a fresh carry would
    _, fresh = step(model, second)
    assert torch.allclose(out["logits"][0], fresh["logits"][0], atol=1e-6)


def test_training_halts_on_q_or_max_with_seeded_exploration():
    model = make_model(halt_max_steps=4, halt_exploration_prob=0.0).train()
    batch = make_batch(batch=64)
    with torch.no_grad():
        model.q_head.weight.zero_()
        model.q_head.bias.fill_(3.0)  # q_halt > 0 everywhere
    _, out = step(model, batch)
    assert out["halted"].all()
    with torch.no_grad():
        model.q_head.bias.fill_(-3.0)
    _, out = step(model, batch)
    assert not out["halted"].any()

    with torch.no_grad():
        model.q_head.bias.fill_(3.0)
    model.config.halt_exploration_prob = 0.5
    halted = [step(model, batch, generator=torch.Generator().manual_seed(s))[1]["halted"] for s in (7, 7, 8)]
    assert torch.equal(halted[0], halted[1])  # seeded
    assert 0 < halted[0].sum() < 64  # explored sequences keep going past step 1
    assert not torch.equal(halted[0], halted[2])


# ---- hybrid conditioning ------------------------------------------------------------------------

def test_init_latents_are_used_on_the_first_step():
    model = make_model().eval()
    batch = make_batch()
    _, plain = step(model, batch)
    z = torch.randn(B, L, D, generator=torch.Generator().manual_seed(3))
    _, with_h = step(model, batch, init_z_H=z)
    _, with_l = step(model, batch, init_z_L=z)
    assert not torch.allclose(plain["logits"], with_h["logits"])
    assert not torch.allclose(plain["logits"], with_l["logits"])
    _, other = step(model, batch, init_z_H=2 * z)
    assert not torch.allclose(with_h["logits"], other["logits"])


def test_grid_length_init_keeps_learned_init_in_prefix_slots():
    model = make_model().eval()
    batch = make_batch()
    z = torch.randn(B, L, D, generator=torch.Generator().manual_seed(3))
    full = torch.cat((model.H_init.expand(B, 2, D), z), dim=1)  # (B, S, D)
    _, short_out = step(model, batch, init_z_H=z)
    _, full_out = step(model, batch, init_z_H=full)
    assert torch.equal(short_out["logits"], full_out["logits"])
    with pytest.raises(ValueError, match="init_z_H"):
        step(model, batch, init_z_H=torch.zeros(B, L + 1, D))


def test_init_latents_only_replace_restarting_sequences():
    model = make_model().eval()
    batch = make_batch()
    carry, _ = step(model, batch)
    _, out = model(carry, batch, init_z_H=torch.randn(B, L, D))  # nobody restarts on step 2
    _, plain = model(step(model, batch)[0], batch)
    assert torch.equal(out["logits"], plain["logits"])


def test_conditioning_changes_logits_and_gets_gradient_at_three_h_cycles():
    model = make_model(H_cycles=3).train()
    batch = make_batch()
    _, plain = step(model, batch, generator=torch.Generator().manual_seed(0))
    c = (0.1 * torch.randn(B, L, D, generator=torch.Generator().manual_seed(4))).requires_grad_(True)
    init = torch.randn(B, L, D, requires_grad=True)
    _, out = step(model, batch, conditioning=c, init_z_H=init, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(plain["logits"], out["logits"])
    out["logits"].float().square().mean().backward()
    assert c.grad is not None and c.grad.abs().sum() > 0
    # the pitfall conditioning exists to fix: an initial state alone gets no grad through no-grad cycles
    assert init.grad is None or init.grad.abs().sum() == 0


def test_conditioning_rejects_rows_that_continue_other_inputs():
    model = make_model().eval()
    first, second = make_batch(1), make_batch(2)
    carry, _ = step(model, first)
    c = torch.zeros(B, L, D)
    model(carry, first, conditioning=c)  # same rows: fine
    with pytest.raises(ValueError, match="continue"):
        model(carry, second, conditioning=c)


# ---- config and persistence ---------------------------------------------------------------------

@pytest.mark.parametrize("overrides, key", [
    (dict(num_heads=3), "num_heads"),
    (dict(H_cycles=0), "H_cycles"),
    (dict(L_cycles=0), "L_cycles"),
    (dict(mixer="conv"), "mixer"),
    (dict(pos_encodings="alibi"), "pos_encodings"),
    (dict(forward_dtype="fp8"), "forward_dtype"),
    (dict(halt_exploration_prob=1.5), "halt_exploration_prob"),
    (dict(puzzle_emb_ndim=100, puzzle_emb_len=1), "puzzle_emb_ndim"),
])
def test_config_validation_names_the_key(overrides, key):
    with pytest.raises(ValueError, match=key):
        tiny(**overrides)


def test_config_dict_round_trip_and_unknown_keys():
    config = tiny(separate_h_level=True)
    assert TRMConfig.from_dict(config.to_dict()) == config
    assert TRMConfig().puzzle_emb_ndim == 512 and TRMConfig().L_cycles == 4
    with pytest.raises(ValueError, match="hiden_size"):
        TRMConfig.from_dict({"hiden_size": 64})


def test_save_pretrained_round_trip(tmp_path):
    model = make_model(separate_h_level=True).eval()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["separate_h_level"] is True
    loaded = TRM.from_pretrained(tmp_path).eval()
    batch = make_batch()
    _, a = step(model, batch)
    _, b = step(loaded, batch)
    assert torch.equal(a["logits"], b["logits"]) and torch.equal(a["q_halt_logits"], b["q_halt_logits"])

    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_layer": 3}))
    with pytest.raises(ValueError, match="n_layer"):
        TRM.from_pretrained(tmp_path)
