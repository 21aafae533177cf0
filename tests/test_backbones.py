"""Backbones on the offline tiny LLaMA: loading paths and errors, frozen weights with a trainable prefix,
constrained and cached generation, 4-bit + LoRA, and the masked-diffusion loss and sampler."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from hybrid_pipeline.backbones import BackboneConfig, BackboneLoadError, load_backbone
from hybrid_pipeline.backbones.causal import CausalBackbone, grid_alphabet_ids
from hybrid_pipeline.backbones.diffusion import DiffusionBackbone, masked_diffusion_loss, transfer_schedule
from hybrid_pipeline.backbones.tiny import build_char_tokenizer, save_tiny

PROMPT = "Input:\n012\n345\nOutput:\n"


@pytest.fixture(scope="module")
def causal():
    return load_backbone(BackboneConfig())


@pytest.fixture(scope="module")
def diffusion():
    return load_backbone(BackboneConfig(kind="diffusion", name_or_path="tiny-random-diffusion"))


def encode(backbone, texts):
    return backbone.tokenizer(texts, return_tensors="pt", padding=True)


def test_char_tokenizer_gives_one_token_per_grid_character():
    tok = build_char_tokenizer()
    ids = tok("07\n9", add_special_tokens=False).input_ids
    assert len(ids) == 4 and tok.decode(ids) == "07\n9"
    assert tok("x").input_ids[0] == tok.bos_token_id
    assert len(grid_alphabet_ids(tok)) == 12  # ten digits, newline, EOS
    assert tok.mask_token_id is not None and tok.pad_token_id is not None


def test_hidden_states_shapes_and_seeded_weights(causal):
    batch = encode(causal, [PROMPT, "Input:\n1\n"])
    T = batch.input_ids.shape[1]
    assert causal.hidden_states(batch.input_ids, batch.attention_mask).shape == (2, T, 64)
    assert causal.hidden_states(batch.input_ids, batch.attention_mask, layer=0).shape == (2, T, 64)
    assert causal.embed(batch.input_ids).shape == (2, T, 64)
    assert causal.hidden_size == 64 and causal.random_weights
    same = load_backbone(BackboneConfig())
    other = load_backbone(BackboneConfig(seed=1))
    ids = batch.input_ids[:1]
    assert torch.equal(same.hidden_states(ids), causal.hidden_states(ids))
    assert not torch.equal(other.hidden_states(ids), causal.hidden_states(ids))


def test_frozen_weights_stay_bit_identical_while_prefix_trains(causal):
    assert not any(p.requires_grad for p in causal.parameters())
    causal.train()
    assert not causal.model.training  # a frozen backbone stays in eval mode
    before = {k: v.clone() for k, v in causal.state_dict().items()}
    prefix = torch.nn.Parameter(torch.randn(1, 4, 64, generator=torch.Generator().manual_seed(0)))
    optimizer = torch.optim.AdamW([prefix, *causal.parameters()], lr=1e-2)
    batch = encode(causal, [PROMPT + "678\n"])
    labels = batch.input_ids.clone()
    labels[:, :-4] = -100  # loss on the answer only
    out = causal.forward_with_prefix(prefix, batch.input_ids, batch.attention_mask, labels=labels)
    assert out.logits.shape[:2] == (1, 4 + batch.input_ids.shape[1])
    out.loss.backward()
    assert prefix.grad is not None and prefix.grad.abs().sum() > 0
    optimizer.step()
    after = causal.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_prefix_tokens_change_the_output(causal):
    ids = encode(causal, [PROMPT]).input_ids
    g = torch.Generator().manual_seed(0)
    a = causal.forward_with_prefix(torch.randn(1, 2, 64, generator=g), ids).logits[:, -1]
    b = causal.forward_with_prefix(torch.randn(1, 2, 64, generator=g), ids).logits[:, -1]
    plain = causal.forward_with_prefix(None, ids).logits[:, -1]
    assert not torch.allclose(a, b) and not torch.allclose(a, plain)
    torch.testing.assert_close(plain, causal.model(ids).logits[:, -1])


def test_answer_only_loss_ignores_prompt_tokens(causal):
    batch = encode(causal, [PROMPT + "678\n"])
    labels = batch.input_ids.clone()
    labels[:, :-4] = -100
    prefix = torch.zeros(1, 3, 64)
    logits = causal.forward_with_prefix(prefix, batch.input_ids, labels=labels).logits
    # Position K+t predicts token t+1: the answer's 4 tokens are predicted by the 4 positions before them.
    expected = torch.nn.functional.cross_entropy(logits[0, -5:-1], batch.input_ids[0, -4:])
    loss = causal.forward_with_prefix(prefix, batch.input_ids, labels=labels).loss
    torch.testing.assert_close(loss, expected)


def test_constrained_generation_emits_only_grid_tokens(causal):
    ids = encode(causal, [PROMPT]).input_ids
    allowed = set(grid_alphabet_ids(causal.tokenizer))
    free = causal.generate(ids, max_new_tokens=40)
    assert not set(free.flatten().tolist()) <= allowed  # the random model left alone wanders off the alphabet
    constrained = causal.generate(ids, max_new_tokens=40, constrain_to_grid=True)
    assert constrained.shape[0] == 1 and set(constrained.flatten().tolist()) <= allowed


def test_prompt_cache_reuse_matches_re_encoding(causal):
    ids = encode(causal, [PROMPT]).input_ids
    prefix = torch.randn(1, 3, 64, generator=torch.Generator().manual_seed(0))
    fresh = causal.generate(ids, prefix, max_new_tokens=20, constrain_to_grid=True)
    cache = causal.encode_prompt(ids, prefix)
    length = cache.past_key_values.get_seq_length()
    first = causal.generate(prompt_cache=cache, max_new_tokens=20, constrain_to_grid=True)
    second = causal.generate(prompt_cache=cache, max_new_tokens=20, constrain_to_grid=True)
    assert torch.equal(first, fresh) and torch.equal(second, fresh)
    assert cache.past_key_values.get_seq_length() == length  # attempts work on copies
    with pytest.raises(ValueError, match="not both"):
        causal.generate(ids, prompt_cache=cache)


def test_left_padding_changes_nothing_with_a_prefix_in_front(causal):
    """A left-padded row must see the positions it would see unpadded, in the loss forward, in the
    prompt cache and in generation (which counts positions from the mask)."""
    ids = encode(causal, [PROMPT]).input_ids  # [1,T]
    pad = torch.full((1, 3), causal.tokenizer.pad_token_id, dtype=ids.dtype)
    padded, mask = torch.cat([pad, ids], 1), torch.cat([torch.zeros(1, 3), torch.ones_like(ids)], 1).long()
    prefix = torch.randn(1, 2, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = causal.forward_with_prefix(prefix, ids).logits[:, -ids.shape[1]:]
        shifted = causal.forward_with_prefix(prefix, padded, mask).logits[:, -ids.shape[1]:]
    torch.testing.assert_close(shifted, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(causal.hidden_states(padded, mask)[:, 3:], causal.hidden_states(ids),
                               rtol=1e-5, atol=1e-5)
    fresh = causal.generate(ids, prefix, max_new_tokens=12, constrain_to_grid=True)
    cached = causal.generate(prompt_cache=causal.encode_prompt(padded, prefix, mask), max_new_tokens=12,
                             constrain_to_grid=True)
    assert torch.equal(cached, fresh)


def test_saved_tiny_model_loads_through_from_pretrained(causal, tmp_path):
    save_tiny(tmp_path / "tiny")
    loaded = load_backbone(BackboneConfig(name_or_path=str(tmp_path / "tiny")))
    assert not loaded.random_weights  # weights came from a checkpoint
    ids = encode(causal, [PROMPT]).input_ids
    assert torch.equal(loaded.tokenizer(PROMPT, return_tensors="pt").input_ids, ids)
    torch.testing.assert_close(loaded.hidden_states(ids), causal.hidden_states(ids))


def test_checkpoint_without_lm_head_is_refused(tmp_path):
    directory = save_tiny(tmp_path / "headless")
    weights = load_file(directory / "model.safetensors")
    del weights["lm_head.weight"]
    save_file(weights, directory / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(BackboneLoadError, match="LM head"):
        load_backbone(BackboneConfig(name_or_path=str(directory)))


def test_unknown_model_gives_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneLoadError, match="no such model directory") as missing:
        load_backbone(BackboneConfig(name_or_path=str(tmp_path / "nowhere")))
    assert "nowhere" in str(missing.value) and "\n" not in str(missing.value)
    with pytest.raises(BackboneLoadError, match="no-such-org/no-such-model") as hub:
        load_backbone(BackboneConfig(name_or_path="no-such-org/no-such-model"))
    assert "HF_HUB_OFFLINE" in str(hub.value) and "\n" not in str(hub.value)


def test_quantisation_without_bitsandbytes_names_the_fix(monkeypatch):
    import transformers.utils

    monkeypatch.setattr(transformers.utils, "is_bitsandbytes_available", lambda: False)
    with pytest.raises(BackboneLoadError, match="pip install bitsandbytes"):
        load_backbone(BackboneConfig(load_in_4bit=True))


def test_4bit_lora_loads_on_cpu_and_only_lora_trains(causal):
    pytest.importorskip("bitsandbytes")
    backbone = load_backbone(BackboneConfig(load_in_4bit=True, lora=True, lora_r=4))
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    batch = encode(causal, [PROMPT + "678\n"])
    prefix = torch.randn(1, 2, 64, requires_grad=True)
    backbone.forward_with_prefix(prefix, batch.input_ids, labels=batch.input_ids).loss.backward()
    grads = [p.grad for n, p in backbone.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    assert prefix.grad.abs().sum() > 0
    quantised = [m for m in backbone.modules() if type(m).__name__ == "Linear4bit"]
    assert quantised
    out = backbone.generate(batch.input_ids[:, :-4], max_new_tokens=4, constrain_to_grid=True)
    assert set(out.flatten().tolist()) <= set(grid_alphabet_ids(backbone.tokenizer))


def test_load_backbone_dispatches_on_kind(causal, diffusion):
    assert isinstance(causal, CausalBackbone) and isinstance(diffusion, DiffusionBackbone)
    assert diffusion.mask_token_id == diffusion.tokenizer.mask_token_id and diffusion.bidirectional_mask


def test_diffusion_backbone_attends_both_ways(diffusion, causal):
    ids = encode(diffusion, [PROMPT]).input_ids
    changed = ids.clone()
    changed[0, -2] = diffusion.tokenizer.convert_tokens_to_ids("9")
    logits, _ = diffusion(ids)
    assert not torch.allclose(diffusion(changed)[0][0, 1], logits[0, 1])  # a later token moves an earlier one
    torch.testing.assert_close(causal.model(changed).logits[0, 1], causal.model(ids).logits[0, 1])


def test_diffusion_hidden_states_choose_a_layer_and_see_the_whole_prompt(diffusion):
    ids = encode(diffusion, [PROMPT]).input_ids
    T, D = ids.shape[1], diffusion.hidden_size
    last = diffusion.hidden_states(ids)  # config default: the last layer
    assert last.shape == (1, T, D)
    torch.testing.assert_close(last, diffusion(ids, output_hidden_states=True)[1])
    torch.testing.assert_close(diffusion.hidden_states(ids, layer=0), diffusion.embed(ids))
    first = diffusion.hidden_states(ids, layer=1)
    assert not torch.allclose(first, last)
    changed = ids.clone()
    changed[0, -2] = diffusion.tokenizer.convert_tokens_to_ids("9")
    assert not torch.allclose(diffusion.hidden_states(changed, layer=1)[0, 1], first[0, 1])  # bidirectional
    assert diffusion.dtype == diffusion.embed(ids).dtype


def test_masked_diffusion_loss_by_hand():
    # Two sequences of 4 tokens, vocab 3. Logits put all their mass on token 0 except where noted.
    logits = torch.zeros(2, 4, 3)
    targets = torch.tensor([[0, 1, 2, 0], [1, 1, 1, 1]])
    noise = torch.tensor([[False, True, False, False], [True, False, False, True]])
    p_mask = torch.tensor([0.25, 0.5])
    eligible = torch.tensor([4, 2])
    # Uniform logits: every masked token costs log 3, unmasked positions cost nothing, no shift.
    expected = (math.log(3) / (0.25 * 4) + 2 * math.log(3) / (0.5 * 2)) / 2
    loss = masked_diffusion_loss(logits, targets, noise, p_mask, eligible)
    assert loss.item() == pytest.approx(expected)
    garbage = logits.clone()
    garbage[~noise] = torch.randn(int((~noise).sum()), 3) * 10
    assert masked_diffusion_loss(garbage, targets, noise, p_mask, eligible).item() == pytest.approx(expected)
    # A shifted prediction (position 0 scoring sequence 0's token 1) would be right; unshifted it is not.
    shifted = logits.clone()
    shifted[0, 1, 1] = 20.0
    assert masked_diffusion_loss(shifted, targets, noise, p_mask, eligible) < loss
    shifted[0, 1, 1], shifted[0, 0, 1] = 0.0, 20.0
    assert masked_diffusion_loss(shifted, targets, noise, p_mask, eligible).item() == pytest.approx(expected)


def test_diffusion_loss_masks_only_answer_positions(diffusion):
    batch = encode(diffusion, [PROMPT + "678\n", PROMPT + "111\n"])
    answer = torch.zeros_like(batch.input_ids, dtype=torch.bool)
    answer[:, -4:] = True
    prefix = torch.randn(2, 3, 64, requires_grad=True)
    out = diffusion.diffusion_loss(batch.input_ids, answer_mask=answer, prefix_embeds=prefix,
                                   t=torch.tensor([1.0, 1.0]), generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.noise_mask, answer)  # t = 1 masks every eligible token and nothing else
    out.loss.backward()
    assert prefix.grad.abs().sum() > 0 and not any(p.requires_grad for p in diffusion.parameters())
    again = diffusion.diffusion_loss(batch.input_ids, answer_mask=answer, generator=torch.Generator().manual_seed(5))
    repeat = diffusion.diffusion_loss(batch.input_ids, answer_mask=answer, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again.noise_mask, repeat.noise_mask) and again.loss == repeat.loss
    assert not (again.noise_mask & ~answer).any()


def test_transfer_schedule_spreads_tokens_evenly():
    assert transfer_schedule(torch.tensor([10, 3]), 4).tolist() == [[3, 3, 2, 2], [1, 1, 1, 0]]


def test_diffusion_sampling_fills_the_answer(diffusion):
    ids = encode(diffusion, [PROMPT, PROMPT]).input_ids
    out = diffusion.generate(ids, gen_length=24, block_length=8, steps=6, constrain_to_grid=True)
    assert out.tokens.shape == (2, 24) and out.sequences.shape == (2, ids.shape[1] + 24)
    assert not (out.tokens == diffusion.mask_token_id).any()
    assert set(out.tokens.flatten().tolist()) <= set(grid_alphabet_ids(diffusion.tokenizer))
    assert torch.equal(out.sequences[:, :ids.shape[1]], ids)
    free = diffusion.generate(ids, gen_length=24, block_length=8, steps=6, temperature=1.0,
                              generator=torch.Generator().manual_seed(0))
    same = diffusion.generate(ids, gen_length=24, block_length=8, steps=6, temperature=1.0,
                              generator=torch.Generator().manual_seed(0))
    assert torch.equal(free.tokens, same.tokens) and not (free.tokens == diffusion.mask_token_id).any()
    with pytest.raises(ValueError, match="multiple of block_length"):
        diffusion.generate(ids, gen_length=20, block_length=8, steps=6)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_diffusion_early_stop_keeps_every_token_before_the_stop_token(diffusion, temperature):
    ids = encode(diffusion, [PROMPT, PROMPT[:-3]]).input_ids
    kwargs = dict(gen_length=64, block_length=8, steps=32, constrain_to_grid=True, temperature=temperature)
    full = diffusion.generate(ids, generator=torch.Generator().manual_seed(0), **kwargs)
    # stop tokens that each row samples in its third block: the run can stop after block 3 of 8
    stops = sorted({row[20] for row in full.tokens.tolist()})
    early = diffusion.generate(ids, generator=torch.Generator().manual_seed(0), stop_token_ids=stops, **kwargs)
    assert full.sampled == 64 and early.sampled <= 24 and early.steps == early.sampled // 8 * 4 < full.steps
    assert early.tokens.shape == full.tokens.shape
    assert (early.tokens[:, early.sampled:] == stops[0]).all()
    for row_full, row_early in zip(full.tokens.tolist(), early.tokens.tolist()):
        cut = min(row_early.index(s) for s in stops if s in row_early) + 1
        assert cut <= early.sampled and row_early[:cut] == row_full[:cut]


def test_refine_hook_sees_low_confidence_chunks_and_its_prefix_is_used(diffusion):
    ids = encode(diffusion, [PROMPT]).input_ids
    seen = []

    def hook(chunk_hidden, chunk_confidence, low):
        seen.append((chunk_hidden.shape, chunk_confidence.shape, low.clone()))
        return torch.randn(1, 2, 64, generator=torch.Generator().manual_seed(len(seen)))

    plain = diffusion.generate(ids, gen_length=16, block_length=8, steps=4, chunk_length=4)
    refined = diffusion.generate(ids, gen_length=16, block_length=8, steps=4, chunk_length=4,
                                 refine_hook=hook, refine_threshold=1.0)
    assert refined.steps == 4 and refined.refine_calls == len(seen) == 4
    assert refined.confidence_history.shape == (4, 1, 4) and refined.chunk_confidence.shape == (1, 4)
    assert all(h == (1, 4, 4, 64) and c == (1, 4) for h, c, _ in seen)
    assert seen[0][2].tolist() == [[True, True, False, False]]  # only chunks of the current block
    assert refined.refined_chunks == sum(int(low.sum()) for *_, low in seen)
    # The hook's prefix is used: the step is predicted again with it, so the confidences move.
    assert not torch.allclose(plain.confidence_history, refined.confidence_history)
    quiet = diffusion.generate(ids, gen_length=16, block_length=8, steps=4, chunk_length=4, refine_hook=hook,
                               refine_threshold=0.0)
    assert quiet.refine_calls == 0 and torch.equal(quiet.tokens, plain.tokens)
    torch.testing.assert_close(quiet.confidence_history, plain.confidence_history)


def test_prompt_states_extend_and_generate_after_the_prompt_as_one_uncached_pass(causal, diffusion):
    """prompt_first: keys and values of a prompt, extended by more text, equal the whole prompt's; and
    generation after [prompt ; prefix] from the prompt's stored keys and values equals generation from
    the whole sequence with no cache."""
    head, tail = encode(causal, [PROMPT]).input_ids, torch.tensor([[40, 41, 42]])
    whole = causal.prompt_states(torch.cat([head, tail], 1), with_kv=True)
    extended = causal.extend_prompt_states(causal.prompt_states(head, with_kv=True), None, tail)
    assert extended.kv.shape == whole.kv.shape == (2, 2, 1, 4, head.shape[1] + 3, 16)
    torch.testing.assert_close(extended.kv, whole.kv, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(extended.hidden, whole.hidden, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="with_kv=True"):
        causal.extend_prompt_states(causal.prompt_states(head), None, tail)

    prefix = torch.randn(1, 3, 64, generator=torch.Generator().manual_seed(0))
    ids = torch.cat([head, tail], 1)
    embeds = torch.cat([causal.embed(ids), prefix], dim=1)  # [prompt ; prefix], no cache
    reference = causal.model.generate(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
                                      max_new_tokens=10, do_sample=False, pad_token_id=causal.tokenizer.pad_token_id)
    cached = causal.generate_answer(ids, None, prefix, layout="prompt_first", max_new_tokens=10,
                                    constrain_to_grid=False, prompt_kv=extended.kv)
    assert torch.equal(cached, reference)
    with pytest.raises(ValueError, match="layout 'prompt_first' is not available for a diffusion backbone"):
        diffusion.check_layout("prompt_first")
