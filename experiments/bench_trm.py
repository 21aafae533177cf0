"""Benchmark one TRM training step: forward over one supervision step + loss + backward + Adam-atan2 step.

Batch 4, seq 900 (+16 puzzle slots), H_cycles 3, L_cycles 4, 2 layers, float32; hidden 128 (4 heads)
and 512 (8 heads); on CPU, and on CUDA when available.

Peak memory, measured from just after the model and batch exist (so activations, grads and Adam
state count): on CUDA, torch.cuda.max_memory_allocated above what was allocated then; on CPU, the
growth of the process's peak RSS (resource.getrusage ru_maxrss), each measurement in a fresh process
so that earlier peaks do not hide later ones. glibc's malloc raises its mmap threshold as big blocks
are freed, and then keeps freed memory in the heap, so the default peak RSS depends on the order of
allocations as much as on what is alive: measured that way, ours and the reference each came out
higher than the other in different runs, by up to 10%. So the CPU peak is taken with the
threshold fixed at 64 KiB (mallopt), where every big tensor is its own mapping and goes back to
the OS when freed: the RSS then follows live memory. Timings run under the default malloc.

Timings: both implementations are built in one fresh process and timed in turns (a step of ours, a
step of the reference, a MATMUL_N^3 float32 matmul, and again), best of the repeats. The machine this is
developed on changes speed by up to 50% over minutes, so timing each in its own process a minute
apart made the ratio swing by 0.3 between runs; in turns the drift falls on all of them alike.

    .venv/bin/python experiments/bench_trm.py --quick
    PYTHONPATH=/tmp/refdeps .venv/bin/python experiments/bench_trm.py --reference /tmp/trm_ref [--compile]

`--compile` adds ours under torch.compile (`compile_for_training`, the trainer's `torch_compile=true`)
to the turns, compiled during the warm-up step. The reference is timed uncompiled (its own trainer
compiles the whole model unless DISABLE_COMPILE is set).

GFLOP is what one step computes in matmuls and attention (torch's FlopCounterMode), and GFLOP/s
that over the step time: the same GFLOP for both implementations means the same work, so a ratio
of step times is a ratio of how well that work runs on the machine. With `--reference`, a line per
size sets the rate that a step 1.5x faster than the reference would need against the matmul's (a
step of small matmuls and attention does not beat one large matmul), and the rate ours reached.

`--reference DIR` times the public TinyRecursiveModels model (its ACT model and its stablemax loss
head, with our Adam-atan2, as its own optimiser is a CUDA extension) from a local checkout at the same
config, and prints our time as a ratio of its time. The checkout needs `einops` importable.
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing as mp
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial

BATCH, SEQ_LEN, PREFIX = 4, 900, 16
SIZES = [(128, 4), (512, 8)]
MATMUL_N = 2048  # side of the square float32 matmul timed beside the steps, as the machine's ceiling


def build(impl: str, hidden: int, heads: int, reference_dir: str | None):
    """(model, step_fn) where step_fn(batch) runs one training step."""

    from hybrid_pipeline.trm import AdamAtan2, TRM, TRMConfig, act_loss
    from hybrid_pipeline.trm.train import compile_for_training

    if impl in ("ours", "compiled"):
        config = TRMConfig(hidden_size=hidden, num_heads=heads, seq_len=SEQ_LEN, puzzle_emb_len=PREFIX,
                           forward_dtype="float32", num_puzzle_identifiers=8)
        model = TRM(config).train()
        loss_fn = compile_for_training(model) if impl == "compiled" else act_loss

        def loss_of(batch):
            carry, out = model(model.initial_carry(batch), batch)
            return loss_fn(out, carry.current_data["labels"]).loss
    else:
        sys.path.insert(0, reference_dir)
        from models.losses import ACTLossHead
        from models.recursive_reasoning.trm import TinyRecursiveReasoningModel_ACTV1

        model = ACTLossHead(TinyRecursiveReasoningModel_ACTV1(dict(
            batch_size=BATCH, seq_len=SEQ_LEN, puzzle_emb_ndim=hidden, num_puzzle_identifiers=8, vocab_size=12,
            H_cycles=3, L_cycles=4, H_layers=0, L_layers=2, hidden_size=hidden, expansion=4, num_heads=heads,
            pos_encodings="rope", halt_max_steps=16, halt_exploration_prob=0.1, forward_dtype="float32",
            puzzle_emb_len=PREFIX)), loss_type="stablemax_cross_entropy").train()

        def loss_of(batch):
            _, loss, *_ = model(return_keys=[], carry=model.initial_carry(batch), batch=batch)
            return loss

    optimizer = AdamAtan2(model.parameters(), lr=1e-4)

    def step(batch):
        loss_of(batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return model, step


def count_flops(step, batch) -> int:
    """Floating-point operations of one `step(batch)`, counted by torch's FlopCounterMode.

    Matmuls and attention only (elementwise work is not counted). torch has no formula for the CPU
    flash-attention ops, so theirs are given here: the same counts as its other attention kernels.
    """
    import torch
    from torch.utils import flop_counter

    aten = torch.ops.aten

    def forward(q, k, v, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(q, k, v)

    def backward(grad_out, q, k, v, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_backward_flop_count(grad_out, q, k, v)

    custom = {aten._scaled_dot_product_flash_attention_for_cpu: forward,
              aten._scaled_dot_product_flash_attention_for_cpu_backward: backward}
    with flop_counter.FlopCounterMode(display=False, custom_mapping=custom) as counter:
        step(batch)
    return counter.get_total_flops()


def setup(impl: str, hidden: int, heads: int, reference_dir: str | None):
    """(step_fn, batch) for one implementation, each seeded alike; call under `torch.device(...)`."""
    import torch

    torch.manual_seed(0)
    _, step = build(impl, hidden, heads, reference_dir)
    batch = {"inputs": torch.randint(2, 12, (BATCH, SEQ_LEN)), "labels": torch.randint(2, 12, (BATCH, SEQ_LEN)),
             "puzzle_identifiers": torch.randint(0, 8, (BATCH,))}
    return step, batch


def _sync(device: str):
    import torch

    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def time_in_turns(impls: list[str], hidden: int, heads: int, device: str, repeats: int,
                  reference_dir: str | None) -> dict[str, float]:
    """Best step time of each implementation, and of one MATMUL_N^3 float32 matmul (key "matmul"),
    timed in turns in one process: a step of each, then the matmul, `repeats` times. The machine's speed
    drifts over minutes; turns spread the drift over all of them alike."""
    import torch

    sync = _sync(device)
    # the reference makes its carry on the default device (its trainer runs under `with torch.device("cuda")`)
    with torch.device(device):
        runs = {impl: setup(impl, hidden, heads, reference_dir) for impl in impls}
        a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
        work = {impl: partial(step, batch) for impl, (step, batch) in runs.items()} | {"matmul": lambda: a @ b}
        for fn in work.values():  # warm-up: allocator, optimiser state, compilation
            fn()
        sync()
        best = dict.fromkeys(work, float("inf"))
        for _ in range(repeats):
            for name, fn in work.items():
                start = time.perf_counter()
                fn()
                sync()
                best[name] = min(best[name], time.perf_counter() - start)
    return best


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def memory_and_flops(impl: str, hidden: int, heads: int, device: str, reference_dir: str | None) -> dict:
    """Peak memory growth over a warm-up step and one more (see the module docstring), and the step's
    GFLOP; run it in a fresh process, so that earlier peaks do not hide this one."""
    import torch

    mmap_fixed = False
    if device == "cpu":
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
        mmap_fixed = mallopt is not None and mallopt(M_MMAP_THRESHOLD, 64 * 1024) == 1
    sync = _sync(device)
    with torch.device(device):
        step, batch = setup(impl, hidden, heads, reference_dir)
        # the baseline is taken before the warm-up step so that optimiser state and grads count, as in training
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        for _ in range(2):
            step(batch)
        sync()
        if device == "cuda":
            peak = torch.cuda.max_memory_allocated() - base
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        # after the peak is read: the counter's own work does not count
        gflop = count_flops(step, batch) / 1e9
    return {"peak_mib": peak / 2**20, "gflop": gflop, "mmap_fixed": mmap_fixed}


def measure_in_fresh_process(fn, *args):
    """`fn(*args)` in a new process; an exception (or the death) of that process is raised here."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", metavar="DIR", help="checkout of SamsungSAILMontreal/TinyRecursiveModels")
    parser.add_argument("--quick", action="store_true", help="1 timed repeat instead of 5")
    parser.add_argument("--compile", action="store_true",
                        help="also time ours under torch.compile (the trainer's torch_compile=true)")
    parser.add_argument("--devices", default=None,
                        help="comma-separated, from cpu,cuda (default: cpu, and cuda when available)")
    args = parser.parse_args()

    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.devices:
        devices = [d.strip() for d in args.devices.split(",") if d.strip()]
        if unknown := [d for d in devices if d not in ("cpu", "cuda")]:
            parser.error(f"unknown devices {', '.join(unknown)}; known: cpu, cuda")
        if "cuda" in devices and not torch.cuda.is_available():
            parser.error("--devices names cuda, but torch sees no CUDA device")
    impls = ["ours"] + (["compiled"] if args.compile else []) + (["reference"] if args.reference else [])
    repeats = 1 if args.quick else 5
    print(f"TRM training step: batch {BATCH}, seq {SEQ_LEN}+{PREFIX}, H_cycles 3, L_cycles 4, 2 layers, float32, "
          f"best of {repeats}; torch {torch.__version__}, {torch.get_num_threads()} threads"
          + (f", {torch.cuda.get_device_name()}" if "cuda" in devices else ""))
    header = (f"{'device':<6} {'hidden':>6} {'heads':>5} {'impl':<9} {'step s':>8} {'peak MiB':>9} {'GFLOP':>7} "
              f"{'GFLOP/s':>8} {'ours/ref':>8}")
    print(header)
    print("-" * len(header))
    said_no_mallopt = False
    for device in devices:
        for hidden, heads in SIZES:
            n = repeats if device == "cpu" else max(repeats, 10)  # a GPU step is short: more repeats, same cost
            seconds = measure_in_fresh_process(time_in_turns, impls, hidden, heads, device, n, args.reference)
            results = {impl: measure_in_fresh_process(memory_and_flops, impl, hidden, heads, device, args.reference)
                       for impl in impls}
            if device == "cpu" and not said_no_mallopt and not all(r["mmap_fixed"] for r in results.values()):
                print("(no glibc mallopt: CPU peak memory is the default-malloc RSS growth)")
                said_no_mallopt = True
            for impl, r in results.items():
                ratio = f"{seconds[impl] / seconds['reference']:.2f}" if "reference" in results and impl != "reference" else ""
                print(f"{device:<6} {hidden:>6} {heads:>5} {impl:<9} {seconds[impl]:>8.3f} {r['peak_mib']:>9.1f} "
                      f"{r['gflop']:>7.1f} {r['gflop'] / seconds[impl]:>8.1f} {ratio:>8}", flush=True)
            if "reference" in results:
                ceiling = 2 * MATMUL_N**3 / seconds["matmul"] / 1e9
                needed = 1.5 * results["reference"]["gflop"] / seconds["reference"]
                reached = ", ".join(f"{impl} {results[impl]['gflop'] / seconds[impl] / ceiling:.0%}"
                                    for impl in impls if impl != "reference")
                print(f"  a {MATMUL_N}^3 float32 matmul, timed in the same turns: {ceiling:.1f} GFLOP/s. A step 1.5x faster "
                      f"than the reference needs {needed / ceiling:.0%} of that; reached: {reached}", flush=True)

if __name__ == "__main__":
    main()
