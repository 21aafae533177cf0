"""Adam-atan2 update by hand, sparse sign-SGD on touched puzzle rows only, EMA over parameters only."""

import math

import pytest
import torch
from torch import nn

from hybrid_pipeline.trm import EMA, TRM, AdamAtan2, SparseSignSGD, TRMConfig, act_loss
from hybrid_pipeline.trm.model import PuzzleEmbedding


def test_adam_atan2_two_steps_by_hand():
    p = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = AdamAtan2([p], lr=0.1, betas=(0.9, 0.95), weight_decay=0.1)
    grads = [torch.tensor([0.5, 0.0]), torch.tensor([-0.25, 1.0])]
    expected = [1.0, -2.0]
    m, v = [0.0, 0.0], [0.0, 0.0]
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        opt.step()
        for i in range(2):
            m[i] = 0.9 * m[i] + 0.1 * g[i].item()
            v[i] = 0.95 * v[i] + 0.05 * g[i].item() ** 2
            decayed = expected[i] * (1 - 0.1 * 0.1)
            expected[i] = decayed - 0.1 / (1 - 0.9**t) * math.atan2(m[i], math.sqrt(v[i]) / math.sqrt(1 - 0.95**t))
        assert p.tolist() == pytest.approx(expected, abs=1e-6)
    # first step, first entry: 0.99 - atan2(0.05, 0.5)
    assert 1.0 * 0.99 - math.atan2(0.05, 0.5) == pytest.approx(0.8903313, abs=1e-6)


def test_sparse_sign_sgd_touches_only_batch_rows():
    emb = PuzzleEmbedding(5, 3).train()
    with torch.no_grad():
        emb.weight.copy_(torch.arange(15, dtype=torch.float32).view(5, 3))
    before = emb.weight.clone()
    opt = SparseSignSGD(emb, lr=0.5, weight_decay=0.2)
    rows = emb(torch.tensor([1, 3, 1]))
    # row 1 appears twice: gradients (+1, -3) sum to -2 -> sign -1; row 3 gets +1 in column 0 only
    (rows * torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [-3.0, 0, 0]])).sum().backward()
    opt.step()
    opt.zero_grad()
    decay = 1 - 0.5 * 0.2
    assert emb.weight[1].tolist() == pytest.approx([3 * decay + 0.5, 4 * decay, 5 * decay])
    assert emb.weight[3].tolist() == pytest.approx([9 * decay - 0.5, 10 * decay, 11 * decay])
    for untouched in (0, 2, 4):
        assert torch.equal(emb.weight[untouched], before[untouched])
    assert emb.rows is None
    opt.step()  # no batch since zero_grad: nothing moves
    assert emb.weight[1].tolist() == pytest.approx([3 * decay + 0.5, 4 * decay, 5 * decay])


def test_training_step_updates_network_and_only_batch_puzzle_rows():
    torch.manual_seed(0)
    config = TRMConfig(hidden_size=32, num_heads=2, H_cycles=2, L_cycles=2, seq_len=9, puzzle_emb_len=1,
                       num_puzzle_identifiers=6, halt_max_steps=2, forward_dtype="float32")
    model = TRM(config).train()
    batch = {"inputs": torch.randint(2, 12, (2, 9)), "puzzle_identifiers": torch.tensor([4, 1]),
             "labels": torch.randint(2, 12, (2, 9))}
    adam, sparse = AdamAtan2(model.parameters(), lr=1e-3), SparseSignSGD(model.puzzle_emb, lr=1e-2)
    weights_before = {n: p.detach().clone() for n, p in model.named_parameters()}
    carry, out = model(model.initial_carry(batch), batch)
    act_loss(out, carry.current_data["labels"]).loss.backward()
    adam.step()
    sparse.step()
    table = model.puzzle_emb.weight
    assert table[[1, 4]].abs().min() == pytest.approx(1e-2)  # zero rows moved by exactly lr * sign
    assert table[[0, 2, 3, 5]].abs().sum() == 0
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, weights_before[n])]
    assert "lm_head.weight" in moved and "net.layers.0.attn.qkv.weight" in moved and "embed_tokens.weight" in moved


def test_ema_averages_parameters_not_buffers():
    model = nn.Linear(2, 1)
    model.register_buffer("table", torch.zeros(3))
    ema = EMA(model, decay=0.9)
    assert set(ema.shadow) == {"weight", "bias"}
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
        model.table.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], start + 0.1)
    averaged = ema.averaged(model)
    assert torch.allclose(averaged.weight, start + 0.1)
    assert torch.equal(averaged.table, model.table)  # buffers copied as they are
    assert torch.allclose(model.weight, start + 1.0)  # the live model is untouched
    restored = EMA(model, decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.decay == 0.9 and torch.equal(restored.shadow["weight"], ema.shadow["weight"])
