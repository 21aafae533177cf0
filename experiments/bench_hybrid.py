"""Benchmark the hybrid on the tiny offline backbone: a joint training step in each layout, part by part, and 4 answers.

Model: experiments/configs/hybrid_tiny.yaml on `tiny-random` (LLaMA, hidden 64, 2 layers): TRM hidden
64, 4 heads, 2 layers, H_cycles 3, L_cycles 4, 900 + 16 cells, float32, one supervision step;
attention-pooled refiner with 8 prefix tokens. Data: one real ARC-AGI-1 evaluation task, batch 1,
its full `task_to_prompt` prompt (e1d2900e: every demonstration pair at full size, about 5,000
tokens) and its 30x30 test output as the answer (931 tokens with EOS).

1. Training step: forward + backward + AdamW step.
   - "joint step": `HybridModel.forward` as training calls it, in both layouts (two models with the
     same seeded weights on one backbone). prefix_first [prefix ; prompt ; answer]: the backbone's
     prompt hidden states recomputed, or passed in as `prompt_hidden` (stored across steps); the LM
     loss runs forward and backward over all K+T+A positions either way. prompt_first [prompt ;
     prefix ; answer]: one frozen prompt forward per step gives the hidden states and the prompt's
     keys and values (KV), and the LM loss runs [prefix ; answer] (K+A positions) after that KV;
     or both are passed in (`prompt_hidden`, `prompt_kv`: stored across steps), and no prompt
     forward runs at all.
   - "TRM-only step": a TRM of the same config on the same grids, `act_loss` (grid + 0.5 halting),
     same optimiser. The reference for the ratios.
   - The split (of the prompt_first step) comes from a staged copy of `HybridModel.forward`'s body: the same calls in the same
     order (backbone -> adapter -> TRM + grid/halt loss -> refiner -> LM forward with the prefix +
     answer loss), but each part's output is detached and made a fresh leaf before the next part
     reads it. Backward then runs part by part in reverse, each handing its input gradient to the
     previous one (torch.autograd.backward with explicit grad tensors), and each part's forward and
     backward are timed on their own. So a part's backward time is exactly the backward of the ops
     that part ran in forward: the LM row holds the backward through the frozen LM (the K+A
     positions after the prompt's KV, down to the prefix embeddings), the TRM row the backward of its last, grad-enabled
     H round and of the losses. The backbone's prompt encode has no backward (frozen, no grad).
     The staged step's gradients are checked against model.forward's once (printed), and "sum of
     parts" is shown beside the whole step. The profiler's record_function was not used: backward
     ops run on the autograd engine's thread outside those scopes, so they cannot be attributed to
     a part that way.
2. Generation: the prefix comes from `predict` (TRM at halt_max_steps); 4 attempts, constrained to
   the grid alphabet, greedy, each exactly 930 new tokens (30 rows of 30 digits + newline). The
   random model ends its answer after a couple of tokens (printed), so min_new_tokens = 930 forces
   the full length. "re-encode": `generate(prompt_ids, prefix)` per attempt; "KV reuse":
   `encode_prompt` once (timed, counted), then `generate(prompt_cache=...)` per attempt. Attempts
   alternate between the two modes so machine load hits both alike. Rows with 1 new token isolate
   the prompt cost.

3. The prompt KV a stored run keeps per row, at the tiny model's size (measured) and at LLaMA-3-8B's
   (32 layers, 8 KV heads of 128, bf16: computed), beside the hidden states the adapter reads, per
   prompt token, for this prompt and for the median ARC-AGI-1 evaluation prompt (test input 0, one
   token per character as the tiny tokenizer counts; a tokenizer that merges digits needs fewer).

Timing: warm-up first; every training cell is the median over `--repeats` interleaved rounds; the
generation totals are medians over `--gen-rounds` interleaved rounds of 4 attempts per mode, the
prompt encode a median of 3. Threads fixed by `--threads` (default 1: these tensors are too small
for two threads to pay off on a shared 2-core machine). About 10 minutes on a 2-core CPU shared with other jobs.

    .venv/bin/python experiments/bench_hybrid.py [--threads 1] [--repeats 5] [--gen-rounds 2] [--task e1d2900e]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

ANSWER_TOKENS = 30 * 31  # 30 rows of 30 digits and a newline
ATTEMPTS = 4
clock = time.perf_counter


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def staged_step(model, batch, optimizer, generator, states=None) -> dict[str, float]:
    """HybridModel.forward's computation, part by part with detached boundaries; seconds per part.

    Mirrors `HybridModel._reason` and `forward` at supervision_steps 1, refiner "attention",
    conditioning "sum", no VAE, no feedback (the tiny config), in the model's layout.
    """
    import torch
    import torch.nn.functional as F

    from hybrid_pipeline.trm.losses import exactly_right
    from hybrid_pipeline.trm import act_loss

    cfg, t = model.config, {}
    mask = batch["prompt_mask"]

    start = clock()
    if states is None:
        states = model.encode_prompt(batch["prompt_ids"], mask)  # frozen: no grad, nothing to backpropagate
    hidden = states.hidden
    t["backbone fwd"] = clock() - start

    start = clock()
    z_H, z_L = model.text_to_latent(hidden, mask)  # each [B,L,D]
    t["adapter fwd"] = clock() - start
    z_H_in, z_L_in = z_H.detach().requires_grad_(), z_L.detach().requires_grad_()

    start = clock()
    trm_batch = {"inputs": batch["inputs"], "puzzle_identifiers": batch["puzzle_identifiers"], "labels": batch["labels"]}
    carry = model.trm.initial_carry(trm_batch)
    carry, out = model.trm(carry, trm_batch, init_z_H=z_H_in, init_z_L=z_L_in, conditioning=z_H_in + z_L_in,
                           generator=generator)
    labels = carry.current_data["labels"]
    grid_loss = act_loss(out, labels, loss_type=cfg.loss_type, halt_loss_weight=0.0).loss / labels.shape[0]
    halt_target = exactly_right(out["logits"], labels).to(out["q_halt_logits"].dtype)
    halt_loss = F.binary_cross_entropy_with_logits(out["q_halt_logits"], halt_target)
    trm_loss = cfg.grid_weight * grid_loss.float() + cfg.halt_weight * halt_loss.float()
    P = model.trm.config.prefix_len
    cells_H, cells_L = out["z_H"][:, P:], out["z_L"][:, P:]  # each [B,L,D]
    t["TRM fwd"] = clock() - start
    cells_H_in, cells_L_in = cells_H.detach().requires_grad_(), cells_L.detach().requires_grad_()

    start = clock()
    prefix = model.refiner(cells_H_in, cells_L_in)  # [B,K,D_llm]
    t["refiner fwd"] = clock() - start
    prefix_in = prefix.detach().requires_grad_()

    start = clock()
    lm_term = cfg.lm_weight * model._lm_loss(batch, prefix_in, states.kv, generator).float()
    t["LM fwd"] = clock() - start

    start = clock()
    lm_term.backward()
    t["LM bwd"] = clock() - start
    start = clock()
    prefix.backward(prefix_in.grad)
    t["refiner bwd"] = clock() - start
    start = clock()
    torch.autograd.backward([trm_loss, cells_H, cells_L], [None, cells_H_in.grad, cells_L_in.grad])
    t["TRM bwd"] = clock() - start
    start = clock()
    torch.autograd.backward([z_H, z_L], [z_H_in.grad, z_L_in.grad])
    t["adapter bwd"] = clock() - start
    t["backbone bwd"] = 0.0

    start = clock()
    if optimizer is not None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    t["optimizer"] = clock() - start
    return t


def median_prompt_tokens() -> int:
    """Median prompt length of ARC-AGI-1's evaluation tasks (test input 0), one token per character
    plus BOS, as the tiny tokenizer counts."""
    from hybrid_pipeline.arc.tasks import load_tasks
    from hybrid_pipeline.arc.text import task_to_prompt

    return int(statistics.median(len(task_to_prompt(t)) + 1 for t in load_tasks("arc-agi-1:evaluation").tasks))


# LLaMA-3-8B: 32 layers, 8 KV heads (grouped-query attention) of 128, hidden 4096, bfloat16
LLAMA3_8B = {"layers": 32, "kv_heads": 8, "head_dim": 128, "hidden": 4096, "bytes": 2}


def print_kv_sizes(states, prompt_tokens: int, median_tokens: int) -> None:
    """Bytes a stored row takes: the prompt's keys and values beside its hidden states."""
    def size(n: float) -> str:
        for unit in ("B", "KiB", "MiB", "GiB"):
            if n < 1024 or unit == "GiB":
                return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
            n /= 1024

    kv, hidden = states.kv, states.hidden  # [layers,2,B,H,T,hd], [B,T,D]
    tiny_kv = kv[:, :, 0, :, 0].numel() * kv.element_size()
    tiny_hidden = hidden.shape[-1] * hidden.element_size()
    m = LLAMA3_8B
    big_kv = m["layers"] * 2 * m["kv_heads"] * m["head_dim"] * m["bytes"]
    big_hidden = m["hidden"] * m["bytes"]
    layers, _, _, heads, _, head_dim = kv.shape
    print(f"stored prompt states per row: keys and values = layers x 2 x KV heads x head dim x bytes per prompt token; "
          f"hidden states = width x bytes")
    print(f"| model | KV per token | hidden per token | KV, {prompt_tokens}-token prompt (this task) | "
          f"KV, {median_tokens}-token prompt (median) | hidden, {median_tokens}-token prompt |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, per_kv, per_hidden in ((f"tiny-random ({layers} layers, {heads} heads of {head_dim}, "
                                      f"{str(kv.dtype).removeprefix('torch.')}; measured)", tiny_kv, tiny_hidden),
                                     ("LLaMA-3-8B (32 layers, 8 KV heads of 128, bf16)", big_kv, big_hidden)):
        print(f"| {name} | {size(per_kv)} | {size(per_hidden)} | {size(per_kv * prompt_tokens)} | "
              f"{size(per_kv * median_tokens)} | {size(per_hidden * median_tokens)} |")


def whole_step(loss_fn, optimizer) -> dict[str, float]:
    """Forward (loss_fn), backward, optimiser step; seconds of each."""
    start = clock()
    loss = loss_fn()
    forward = clock() - start
    start = clock()
    loss.backward()
    backward = clock() - start
    start = clock()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {"fwd": forward, "bwd": backward, "optimizer": clock() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds of training steps (medians)")
    parser.add_argument("--gen-rounds", type=int, default=2, help="interleaved rounds of 4 attempts per mode")
    parser.add_argument("--task", default="e1d2900e", help="arc-agi-1:evaluation task id (test input 0)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # the TRM-only model's weights; the hybrid's parts are seeded by its config

    from hybrid_pipeline.arc.tasks import load_tasks
    from hybrid_pipeline.arc.text import task_to_prompt
    from hybrid_pipeline.config import load_config
    from hybrid_pipeline.hybrid import HybridConfig, HybridModel
    from hybrid_pipeline.trm import TRM, act_loss

    load_before = os.getloadavg()[0]
    tasks = load_tasks("arc-agi-1:evaluation", ids=[args.task]).tasks
    if not tasks:
        parser.error(f"no task {args.task!r} in arc-agi-1:evaluation")
    task = tasks[0]
    config_path = os.path.join(os.path.dirname(__file__), "configs", "hybrid_tiny.yaml")
    model = HybridModel.from_config(load_config(HybridConfig, config_path, ["layout=prompt_first"])).train()
    # the same seeded trainable weights on the same backbone, the prefix in front of the prompt
    old = HybridModel.from_config(load_config(HybridConfig, config_path, ["layout=prefix_first"]),
                                  backbone=model.backbone).train()
    batch = model.encode([task_to_prompt(task)], [task.test[0].input], test_outputs=[task.test[0].output])
    T, A = batch["prompt_ids"].shape[1], batch["answer_ids"].shape[1]
    K = model.config.latent_to_text.prefix_length
    limit = model.backbone.model.config.max_position_embeddings
    if K + T + A > limit:
        parser.error(f"task {task.id}: prefix {K} + prompt {T} + answer {A} tokens exceed the tiny model's {limit} positions")
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-5)
    old_optimizer = torch.optim.AdamW(old.trainable_parameters(), lr=1e-5)
    with torch.no_grad():
        states = model.encode_prompt(batch["prompt_ids"], batch["prompt_mask"])  # hidden [1,T,D_llm], KV
    stored_batch = dict(batch, prompt_hidden=states.hidden, prompt_kv=states.kv)
    cached_batch = dict(batch, prompt_hidden=states.hidden)  # prefix_first stores hidden states only

    trm = TRM(model.config.trm).train()  # a TRM-only model of the same size, trained alone
    trm_optimizer = torch.optim.AdamW(trm.parameters(), lr=1e-5)
    trm_batch = {k: batch[k] for k in ("inputs", "labels", "puzzle_identifiers")}

    def trm_loss():
        carry, out = trm(trm.initial_carry(trm_batch), trm_batch, generator=generator)
        return act_loss(out, carry.current_data["labels"]).loss

    # ---- warm-up, and the staged step checked against model.forward (same weights, same grads) ----
    model(batch, generator=generator).loss.backward()
    reference = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    staged_step(model, batch, None, generator)
    worst = max(float((p.grad - reference[n]).abs().max() / reference[n].abs().max().clamp(min=1e-30))
                for n, p in model.named_parameters() if n in reference)
    same_params = {n for n, p in model.named_parameters() if p.grad is not None} == set(reference)
    model.zero_grad(set_to_none=True)
    whole_step(trm_loss, trm_optimizer)

    # ---- training steps, interleaved rounds ----
    whole_step(lambda: old(batch, generator=generator).loss, old_optimizer)
    runs: dict[str, list[dict[str, float]]] = {"trm": [], "old": [], "old cached": [], "whole": [],
                                               "whole stored": [], "parts": []}
    for _ in range(args.repeats):
        runs["trm"].append(whole_step(trm_loss, trm_optimizer))
        runs["old"].append(whole_step(lambda: old(batch, generator=generator).loss, old_optimizer))
        runs["old cached"].append(whole_step(lambda: old(cached_batch, generator=generator).loss, old_optimizer))
        runs["whole"].append(whole_step(lambda: model(batch, generator=generator).loss, optimizer))
        runs["whole stored"].append(whole_step(lambda: model(stored_batch, generator=generator).loss, optimizer))
        runs["parts"].append(staged_step(model, batch, optimizer, generator))

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    def total(name: str, keys=("fwd", "bwd", "optimizer")) -> float:
        return statistics.median(sum(r[k] for k in keys) for r in runs[name])

    # ---- generation ----
    model.eval()
    bb = model.backbone
    with torch.no_grad():
        prefix = old.predict(cached_batch, max_new_tokens=1).prefix_embeds  # [1,K,D_llm]
    ids, mask = batch["prompt_ids"], batch["prompt_mask"]
    grid_only = {"constrain_to_grid": True, "do_sample": False}
    natural = bb.generate(prompt_cache=bb.encode_prompt(ids, prefix, mask), max_new_tokens=ANSWER_TOKENS,
                          **grid_only).shape[1]
    bb.generate(ids, prefix, attention_mask=mask, max_new_tokens=8, min_new_tokens=8, **grid_only)  # warm-up

    encode_times = []
    for _ in range(3):
        start = clock()
        bb.encode_prompt(ids, prefix, mask)
        encode_times.append(clock() - start)
    encode_s = statistics.median(encode_times)

    def attempts(new_tokens: int) -> dict[str, list[float]]:
        """Per-attempt seconds of each mode (the KV-reuse list starts with its one prompt encode)."""
        fixed = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, **grid_only}
        start = clock()
        cache = bb.encode_prompt(ids, prefix, mask)
        times = {"re-encode": [], "reuse": [clock() - start]}
        for _ in range(ATTEMPTS):
            start = clock()
            fresh = bb.generate(ids, prefix, attention_mask=mask, **fixed)
            times["re-encode"].append(clock() - start)
            start = clock()
            reused = bb.generate(prompt_cache=cache, **fixed)
            times["reuse"].append(clock() - start)
            assert fresh.shape[1] == reused.shape[1] == new_tokens
            times.setdefault("same", []).append(float(torch.equal(fresh, reused)))
        return times

    short = attempts(1)
    full = [attempts(ANSWER_TOKENS) for _ in range(args.gen_rounds)]
    full_re = statistics.median(sum(r["re-encode"]) for r in full)
    full_reuse = statistics.median(sum(r["reuse"]) for r in full)
    per_attempt = statistics.median(t for r in full for t in r["reuse"][1:])  # decode only, from the cache
    identical = all(all(r["same"]) for r in full + [short])
    load_after = os.getloadavg()[0]

    # ---- the table ----
    trm_total = total("trm")
    print(f"hybrid_tiny on tiny-random, CPU: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), Python {platform.python_version()}, "
          f"load average {load_before:.1f} -> {load_after:.1f}")
    print(f"task {task.id} (arc-agi-1:evaluation, test 0): prompt {T} tokens, answer {A} tokens, prefix {K} tokens, "
          f"batch 1; training cells median of {args.repeats} rounds, generation of {args.gen_rounds}; staged grads vs model.forward: same parameters "
          f"{'yes' if same_params else 'NO'}, max relative difference {worst:.1e}")
    rows: list[tuple[str, str, str, str, str]] = []

    def row(name, fwd=None, bwd=None, seconds=None, ratio=""):
        def cell(x):
            return "" if x is None else f"{x:.3f}"
        rows.append((name, cell(fwd), cell(bwd), cell(seconds), ratio))

    row("TRM-only step (same TRM)", median("trm", "fwd"), median("trm", "bwd"), trm_total, "1.00x TRM-only")
    for name, label in (("old", "prefix_first, hidden recomputed"), ("old cached", "prefix_first, hidden stored"),
                        ("whole", "prompt_first, prompt KV computed each step"),
                        ("whole stored", "prompt_first, prompt hidden + KV stored")):
        row(f"joint step, {label}", median(name, "fwd"), median(name, "bwd"), total(name),
            f"{total(name) / trm_total:.2f}x TRM-only")
    parts = [("backbone", "prompt forward: hidden + KV (skipped when stored)"), ("adapter", "text->latent adapter"),
             ("TRM", "TRM + grid/halt loss"), ("refiner", "refiner (attention pooling)"),
             ("LM", "LM [prefix ; answer] after the prompt KV + loss")]
    everything = [f"{p} {d}" for p, _ in parts for d in ("fwd", "bwd")] + ["optimizer"]
    staged_total = total("parts", everything)
    staged_cached = total("parts", [k for k in everything if not k.startswith("backbone")])
    for part, label in parts:
        f, b = median("parts", f"{part} fwd"), median("parts", f"{part} bwd")
        row(f"  part: {label}", f, b, f + b, f"{(f + b) / staged_total:.0%} of staged step")
    row("  part: optimizer step (AdamW)", seconds=median("parts", "optimizer"))
    row("  staged sum, prompt KV computed", seconds=staged_total,
        ratio=f"{staged_total / total('whole'):.2f}x model.forward step")
    row("  staged sum, prompt states stored", seconds=staged_cached, ratio=f"{staged_cached / trm_total:.2f}x TRM-only")
    no_lm = total("parts", ["adapter fwd", "adapter bwd", "TRM fwd", "TRM bwd", "refiner fwd", "refiner bwd", "optimizer"])
    row("  staged sum, stored, without the LM part", seconds=no_lm, ratio=f"{no_lm / trm_total:.2f}x TRM-only")
    row(f"prompt encode [prefix ; prompt], {K + T} tokens", seconds=encode_s)
    row(f"{ATTEMPTS} attempts x 1 token, re-encode", seconds=sum(short["re-encode"]), ratio="1.00x")
    row(f"{ATTEMPTS} attempts x 1 token, KV reuse (+1 encode)", seconds=sum(short["reuse"]),
        ratio=f"{sum(short['re-encode']) / sum(short['reuse']):.2f}x faster")
    row(f"{ATTEMPTS} attempts x {ANSWER_TOKENS} tokens, re-encode", seconds=full_re, ratio="1.00x")
    row(f"{ATTEMPTS} attempts x {ANSWER_TOKENS} tokens, KV reuse (+1 encode)", seconds=full_reuse,
        ratio=f"{full_re / full_reuse:.2f}x faster")

    widths = [max(len(r[i]) for r in rows + [("measurement", "fwd s", "bwd s", "total s", "ratio")]) for i in range(5)]
    def line(cells):
        return "| " + " | ".join(c.ljust(w) if i in (0, 4) else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    print(line(("measurement", "fwd s", "bwd s", "total s", "ratio")))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))

    stored_ratio, computed_ratio = total("whole stored") / trm_total, total("whole") / trm_total
    print(f"joint step / TRM-only step: prompt_first with the prompt states stored {stored_ratio:.2f}x, computed each "
          f"step {computed_ratio:.2f}x; prefix_first with hidden states stored {total('old cached') / trm_total:.2f}x "
          f"(1.7x or less is the aim for the stored prompt_first step); the LM part alone is "
          f"{total('parts', ['LM fwd', 'LM bwd']) / trm_total:.2f}x a TRM-only step")
    speedup = full_re / full_reuse
    bound = ATTEMPTS * (encode_s + per_attempt) / (encode_s + ATTEMPTS * per_attempt)
    print(f"generation (prefix_first): KV reuse {speedup:.2f}x faster for {ATTEMPTS} attempts; prompt encode "
          f"{encode_s:.2f} s vs {per_attempt:.2f} s decoding {ANSWER_TOKENS} tokens per attempt, so reuse can save "
          f"at most 4(E+G)/(E+4G) = {bound:.2f}x")
    print_kv_sizes(states, T, median_prompt_tokens())
    print(f"answers: the random model stops after {natural} token(s) on its own (forced to {ANSWER_TOKENS} with "
          f"min_new_tokens); greedy answers identical with and without reuse: {'yes' if identical else 'NO'}")


if __name__ == "__main__":
    main()
