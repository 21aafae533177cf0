"""Adapters: shapes, width errors, determinism, save/load equality, gradients, slot-refiner halting, VAE."""

from __future__ import annotations

import pytest
import torch

from adapters import (LatentToTextAdapter, SlotRefiner, SlotRefinerConfig, TextToLatentAdapter,
                      TextToLatentConfig, VAEAdapter)
from adapters.latent_to_text import region_mask

B, T, D_LLM, D, L = 2, 7, 48, 32, 900


def latents(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, L, D, generator=g), torch.randn(B, L, D, generator=g)


@pytest.mark.parametrize("mean_pool,cross_attention", [(True, True), (True, False), (False, True)])
def test_text_to_latent_shapes_and_padding(mean_pool, cross_attention):
    torch.manual_seed(0)
    adapter = TextToLatentAdapter(llm_hidden=D_LLM, trm_hidden=D, compress_dim=64, num_heads=4,
                                  mean_pool=mean_pool, cross_attention=cross_attention).eval()
    hidden = torch.randn(B, T, D_LLM)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 5:] = False
    z_H, z_L = adapter(hidden, mask)
    assert z_H.shape == z_L.shape == (B, L, D)
    # Masked tokens are ignored: changing them leaves the latents as they were.
    changed = hidden.clone()
    changed[1, 5:] += 10.0
    z_H2, _ = adapter(changed, mask)
    torch.testing.assert_close(z_H2, z_H)
    # ...while an attended token does change them.
    changed[1, 0] += 10.0
    assert not torch.allclose(adapter(changed, mask)[0][1], z_H[1])


def test_text_to_latent_config_needs_a_pooling():
    with pytest.raises(ValueError, match="mean_pool or cross_attention"):
        TextToLatentConfig(mean_pool=False, cross_attention=False)


def test_width_mismatch_names_both_widths():
    text = TextToLatentAdapter(llm_hidden=D_LLM, trm_hidden=D, compress_dim=64, num_heads=4)
    with pytest.raises(ValueError, match=r"48.*4096|4096.*48"):
        text.check_width(4096)
    with pytest.raises(ValueError, match=r"48.*40|40.*48"):
        text(torch.randn(1, 3, 40))
    back = LatentToTextAdapter(trm_hidden=D, llm_hidden=D_LLM, mlp_hidden=64)
    with pytest.raises(ValueError, match=r"48.*2048|2048.*48"):
        back.check_width(2048)
    with pytest.raises(ValueError, match=r"32.*16|16.*32"):
        back(torch.randn(1, L, 16), torch.randn(1, L, 16))
    with pytest.raises(ValueError, match=r"48.*64|64.*48"):
        SlotRefiner(trm_hidden=D, llm_hidden=D_LLM, mlp_hidden=64).check_width(64)


@pytest.mark.parametrize("regions", [None, 3])
def test_latent_to_text_shapes(regions):
    torch.manual_seed(0)
    adapter = LatentToTextAdapter(trm_hidden=D, llm_hidden=D_LLM, num_queries=8, regions=regions, mlp_hidden=64)
    prefix = adapter(*latents())
    assert prefix.shape == (B, 9 if regions else 8, D_LLM)


def test_region_queries_read_only_their_region():
    mask = region_mask(3, 30)
    assert mask.shape == (9, 900) and mask.sum(dim=1).tolist() == [100] * 9
    torch.manual_seed(0)
    adapter = LatentToTextAdapter(trm_hidden=D, llm_hidden=D_LLM, regions=3, mlp_hidden=64).eval()
    z_H, z_L = latents()
    before = adapter(z_H, z_L)
    grid = z_H.view(B, 30, 30, D).clone()
    grid[:, 25, 25] += 5.0  # a cell in the bottom-right region (index 8)
    after = adapter(grid.view(B, L, D), z_L)
    changed = (after - before).abs().amax(dim=(0, 2)) > 0
    assert changed.tolist() == [False] * 8 + [True]


@pytest.mark.parametrize("make", [
    lambda: TextToLatentAdapter(llm_hidden=D_LLM, trm_hidden=D, compress_dim=64, num_heads=4),
    lambda: LatentToTextAdapter(trm_hidden=D, llm_hidden=D_LLM, regions=2, mlp_hidden=64),
    lambda: SlotRefiner(trm_hidden=D, llm_hidden=D_LLM, mlp_hidden=64),
], ids=["text_to_latent", "latent_to_text", "slot_refiner"])
def test_state_dict_round_trip_gives_identical_outputs(make, tmp_path):
    torch.manual_seed(0)
    first = make().eval()
    torch.save(first.state_dict(), tmp_path / "adapter.pt")
    torch.manual_seed(1)
    second = make().eval()
    inputs = (torch.randn(B, T, D_LLM),) if isinstance(first, TextToLatentAdapter) else latents()
    assert not torch.equal(torch.cat([o.flatten() for o in _as_tuple(first(*inputs))]),
                           torch.cat([o.flatten() for o in _as_tuple(second(*inputs))]))
    second.load_state_dict(torch.load(tmp_path / "adapter.pt"))
    for a, b in zip(_as_tuple(first(*inputs)), _as_tuple(second(*inputs))):
        assert torch.equal(a, b)


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def test_slot_refiner_matches_latent_to_text_contract_and_trains():
    torch.manual_seed(0)
    refiner = SlotRefiner(trm_hidden=D, llm_hidden=D_LLM, num_slots=8, max_steps=3, mlp_hidden=64).train()
    z_H, z_L = (z.requires_grad_() for z in latents())
    prefix = refiner(z_H, z_L)
    pooled = LatentToTextAdapter(trm_hidden=D, llm_hidden=D_LLM, num_queries=8, mlp_hidden=64)(z_H, z_L)
    assert prefix.shape == pooled.shape == (B, 8, D_LLM)
    prefix, stats = refiner(z_H, z_L, return_stats=True)
    assert stats.confidence.shape == (3, B) and stats.steps_taken.tolist() == [3, 3]  # training runs every step
    prefix.sum().backward()
    assert z_H.grad.abs().sum() > 0 and refiner.updates["reasoning"].delta.weight.grad.abs().sum() > 0


def test_slot_refiner_widths_and_delta_scale():
    refiner = SlotRefiner(SlotRefinerConfig(trm_hidden=64, llm_hidden=D_LLM, mlp_hidden=64))
    assert refiner.widths == {"context": 32, "reasoning": 16, "refinement": 16, "confidence": 8}
    update = refiner.updates["refinement"]
    part, x = torch.zeros(1, 16), torch.randn(1, update.delta.in_features)
    assert update(part, x).abs().max() <= 0.1  # |sigmoid * tanh| < 1, scaled by delta_scale


def test_slot_refiner_halts_at_eval_when_confident():
    torch.manual_seed(0)
    refiner = SlotRefiner(trm_hidden=D, llm_hidden=D_LLM, max_steps=5, mlp_hidden=64).eval()
    with torch.no_grad():
        refiner.confidence_head.bias.fill_(10.0)  # confidence ~1 from the first step
        _, stats = refiner(*latents(), return_stats=True)
        assert stats.steps_taken.tolist() == [1, 1] and stats.confidence.shape == (1, B)
        refiner.confidence_head.bias.fill_(-10.0)
        _, stats = refiner(*latents(), return_stats=True)
        assert stats.steps_taken.tolist() == [5, 5] and bool((stats.final_confidence < 0.5).all())


def test_slot_refiner_chunk_mask_limits_what_is_read():
    torch.manual_seed(0)
    refiner = SlotRefiner(trm_hidden=D, llm_hidden=D_LLM, max_steps=2, mlp_hidden=64).eval()
    z_H, z_L = latents()
    chunk = torch.zeros(B, L, dtype=torch.bool)
    chunk[:, :30] = True  # the first row only
    before = refiner(z_H, z_L, chunk_mask=chunk)
    outside, inside = z_H.clone(), z_H.clone()
    outside[:, 500] += 5.0
    inside[:, 3] += 5.0
    torch.testing.assert_close(refiner(outside, z_L, chunk_mask=chunk), before)
    assert not torch.allclose(refiner(inside, z_L, chunk_mask=chunk), before)
    with pytest.raises(ValueError, match="no cell"):
        refiner(z_H, z_L, chunk_mask=torch.zeros(B, L, dtype=torch.bool))


def test_vae_sampling_kl_and_eval():
    torch.manual_seed(0)
    vae = VAEAdapter(in_dim=D, latent_dim=16, out_dim=D, beta=0.5)
    x = torch.randn(B, 5, D)
    a = vae(x, generator=torch.Generator().manual_seed(3))
    b = vae(x, generator=torch.Generator().manual_seed(3))
    c = vae(x, generator=torch.Generator().manual_seed(4))
    assert a.sample.shape == (B, 5, D) and torch.equal(a.sample, b.sample) and not torch.equal(a.sample, c.sample)
    mu, logvar = a.mu.detach(), a.logvar.detach()
    expected = 0.5 * (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)).sum(-1).mean()
    torch.testing.assert_close(a.kl.detach(), expected)
    a.kl.backward()
    assert vae.logvar.weight.grad.abs().sum() > 0
    vae.eval()
    assert torch.equal(vae(x).sample, vae.decode(vae.mu(x)))
    with torch.no_grad():  # N(0, I) posterior costs nothing
        for layer in (vae.mu, vae.logvar):
            layer.weight.zero_()
            layer.bias.zero_()
        assert vae(x).kl.item() == 0.0
