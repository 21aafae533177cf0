"""Benchmark the joint training step of `joint_tiny.yaml`: hidden states recomputed vs cached.

One step = build the batch from the training rows (reading the cache when on), the hybrid's forward
(backbone prompt encoding unless cached, adapter, TRM, refiner, LM loss over [prefix ; prompt ;
answer]), backward, AdamW step: what `train_joint` runs per micro-batch on one process. Both variants
see the same batches (micro-batch indices 0..N-1) and the same weights. Rows: the full loss, and the
loss without the LM term (lm_weight=0), where the backbone runs only to encode the prompt, which is
the part a cache removes.

Peak memory is the growth of the process's peak RSS (resource.getrusage ru_maxrss) from just after the
model, data and cache exist to the end of the timed steps, each variant in a fresh process so that
earlier peaks do not hide later ones; on CUDA, torch.cuda.max_memory_allocated above the allocation
at that point. Step time is the median over the timed steps, best of `--rounds` rounds (the variants
alternate between rounds, so a change in machine load hits both).

    .venv/bin/python experiments/bench_joint.py                  # joint_tiny.yaml, 1 torch thread
    .venv/bin/python experiments/bench_joint.py --steps 40 --threads 2 batch_size=16
    .venv/bin/python experiments/bench_joint.py --backbone 512x8   # a wider, deeper random LLaMA

The tiny-random backbone (width 64, 2 layers) is a small part of joint_tiny's step, so the cache can
save little there; `--backbone WIDTHxLAYERS` saves a random LLaMA of that size (the tiny model's
tokenizer) to a temporary directory and loads it by path, to see the ratio where the backbone costs
more, as a real LLM does.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import tempfile
import time

CONFIG = "experiments/configs/joint_tiny.yaml"


def measure(config_path: str, overrides: list[str], cached: bool, lm_weight: float | None, steps: int,
            warmup: int, threads: int, cache_dir: str) -> dict:
    import dataclasses

    import torch

    from hybrid_pipeline.config import load_config
    from hybrid_pipeline.hybrid import HybridModel
    from hybrid_pipeline.joint import JointTrainConfig, build_joint_data, cache_prompt_hidden, load_joint_tasks

    torch.set_num_threads(threads)
    config = load_config(JointTrainConfig, config_path, [*overrides, f"cache_dir={cache_dir}"])
    model_config = dataclasses.replace(config.model, trm=dataclasses.replace(config.model.trm, seq_len=config.canvas ** 2))
    if lm_weight is not None:
        model_config = dataclasses.replace(model_config, lm_weight=lm_weight)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model_config = dataclasses.replace(model_config, backbone=dataclasses.replace(model_config.backbone, device=device))
    train_tasks, eval_tasks = load_joint_tasks(config, say=lambda message: None)
    model = HybridModel.from_config(model_config).train()
    data = build_joint_data(config, train_tasks, eval_tasks, model.backbone.tokenizer, say=lambda message: None)
    cache_s = 0.0
    if cached:
        start = time.perf_counter()
        data.hidden, data.hidden_dtype, data.kv_shape = cache_prompt_hidden(model, data.prompts, cache_dir,
                                                                             progress=False)
        cache_s = time.perf_counter() - start
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=config.lr, betas=config.betas,
                                  weight_decay=config.weight_decay)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step(index: int) -> None:
        batch = data.batch(data.batch_rows(index, config.batch_size, config.seed), model)
        model(batch, generator=torch.Generator(device=device).manual_seed(index)).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for index in range(warmup):  # allocator, optimiser state
        step(index)
    sync()
    times = []
    for index in range(warmup, warmup + steps):
        start = time.perf_counter()
        step(index)
        sync()
        times.append(time.perf_counter() - start)
    if device == "cuda":
        peak, growth = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        growth = peak - base
    return {"step_s": statistics.median(times), "peak_mib": peak / 2**20, "growth_mib": growth / 2**20,
            "cache_s": cache_s, "rows": len(data), "batch": config.batch_size, "device": device}


def _child(queue, *args) -> None:
    queue.put(measure(*args))


def measure_in_fresh_process(*args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="repeat every variant; best median counts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    parser.add_argument("--backbone", metavar="WIDTHxLAYERS", help="a random LLaMA of this size instead of tiny-random")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="JointTrainConfig overrides")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory()
    if args.backbone:
        from hybrid_pipeline.backbones.tiny import build_char_tokenizer, build_tiny_llama

        width, layers = (int(v) for v in args.backbone.lower().split("x"))
        tokenizer = build_char_tokenizer()
        build_tiny_llama(tokenizer, hidden_size=width, num_layers=layers, num_heads=max(1, width // 64)
                         ).save_pretrained(scratch.name)
        tokenizer.save_pretrained(scratch.name)
        args.overrides = [*args.overrides, f"model.backbone.name_or_path={scratch.name}"]

    rows = [("lm+grid+halt", None), ("grid+halt (lm_weight 0)", 0.0)]
    best: dict[tuple[str, bool], dict] = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        # the first cached measurement builds the cache (timed separately); the later ones load it
        for _ in range(args.rounds):
            for label, lm_weight in rows:
                for cached in (False, True):
                    r = measure_in_fresh_process(args.config, args.overrides, cached, lm_weight, args.steps,
                                                 args.warmup, args.threads, cache_dir)
                    key = (label, cached)
                    if key not in best or r["step_s"] < best[key]["step_s"]:
                        best[key] = {**r, "cache_s": max(r["cache_s"], best.get(key, {}).get("cache_s", 0.0))}
    any_row = next(iter(best.values()))
    import torch

    shown = [o for o in args.overrides if not o.startswith("model.backbone.name_or_path=")]
    print(f"joint training step, {' '.join([args.config, *shown])}"
          f"{f' (random LLaMA backbone {args.backbone})' if args.backbone else ''}: batch {any_row['batch']}, "
          f"{any_row['rows']} training rows, {any_row['device']}, torch {torch.__version__}, {args.threads} thread(s); "
          f"median of {args.steps} steps after {args.warmup} warm-up, best of {args.rounds} rounds")
    header = (f"{'loss':<24} {'hidden states':<13} {'step ms':>8} {'speed-up':>8} {'peak MiB':>9} "
              f"{'growth MiB':>10}")
    print(header)
    print("-" * len(header))
    for label, _ in rows:
        base = best[(label, False)]["step_s"]
        for cached in (False, True):
            r = best[(label, cached)]
            print(f"{label:<24} {'cached' if cached else 'recomputed':<13} {1000 * r['step_s']:>8.1f} "
                  f"{base / r['step_s']:>7.2f}x {r['peak_mib']:>9.1f} {r['growth_mib']:>10.1f}")
    print(f"building the cache (once, then loaded): {best[(rows[0][0], True)]['cache_s']:.1f} s for "
          f"{any_row['rows']} prompts")
    scratch.cleanup()


if __name__ == "__main__":
    main()
