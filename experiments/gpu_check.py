"""The checks `experiments/gpu_check.sh` runs, one per process: `python experiments/gpu_check.py CHECK DEVICE`.

Each prints one line, `ROW<TAB>status<TAB>what it measured`, where status is ok, FAILED or skipped
(a package it needs is not importable). The shell script times each, adds the rows to its table
and gives each a time limit. CHECK is one of:

    trm_compiled   the paper's ARC TRM (hidden 512, bfloat16 forward as the reference runs it) under
                   torch.compile (`compile_for_training`, the trainer's torch_compile=true): a first
                   step that compiles, then steps timed; the compiled loss against the eager one on
                   the same batch and weights
    joint_step     experiments/configs/hybrid_tiny.yaml on tiny-random, a 30x30 canvas: a training
                   step in each layout, fp32 and under bf16 autocast (as `accelerate --mixed_precision
                   bf16` runs it); the prompt_first loss from stored prompt states against the
                   computed one; gradients reach the trained parts and never the backbone; predict
    backbone_4bit  tiny-random loaded in 4 bits (nf4, bitsandbytes) with LoRA on the device: a
                   prompt_first joint step whose gradient reaches only LoRA among the backbone's
                   weights, and generation

DEVICE is cuda (the script's only use) or cpu (to try the checks on a machine without a GPU).
"""

from __future__ import annotations

import importlib.util
import sys
import time

CONFIG = "experiments/configs/hybrid_tiny.yaml"


def row(status: str, detail: str) -> None:
    print(f"ROW\t{status}\t{detail}", flush=True)


def missing(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def trm_compiled(device: str) -> None:
    import torch

    from hybrid_pipeline.trm import AdamAtan2, TRM, TRMConfig, act_loss
    from hybrid_pipeline.trm.train import compile_for_training

    torch.manual_seed(0)
    # the paper's ARC config (bfloat16 forward); on a CPU, where this only tries the code path, a narrow one
    B, size = (8, {}) if device == "cuda" else (2, {"hidden_size": 64, "num_heads": 4})
    with torch.device(device):
        config = TRMConfig(num_puzzle_identifiers=8, **size)
        eager, compiled = TRM(config).train(), TRM(config).train()
        compiled.load_state_dict(eager.state_dict())
        batch = {"inputs": torch.randint(2, 12, (B, 900)), "labels": torch.randint(2, 12, (B, 900)),
                 "puzzle_identifiers": torch.randint(0, 8, (B,))}
    loss_fn = compile_for_training(compiled)
    optimizer = AdamAtan2(compiled.parameters(), lr=1e-4)

    def loss(model, fn):
        carry, out = model(model.initial_carry(batch), batch)
        return fn(out, carry.current_data["labels"]).loss, out

    def step() -> tuple[torch.Tensor, float]:
        """One compiled training step: (its loss, seconds)."""
        start = time.perf_counter()
        step_loss, _ = loss(compiled, loss_fn)
        step_loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        return step_loss, time.perf_counter() - start

    # halting exploration draws from the global RNG: the same seed for both, so both take the same path
    torch.manual_seed(1)
    reference, out = loss(eager, act_loss)
    torch.manual_seed(1)
    first, compile_s = step()  # compiles
    steps = [step() for _ in range(5)]
    step_loss, times = steps[-1][0], [t for _, t in steps]
    dtype = str(out["logits"].dtype).removeprefix("torch.")
    first, reference = first.item(), reference.item()
    difference = abs(first - reference) / abs(reference)
    ok = difference < 2e-2 and bool(torch.isfinite(step_loss))
    row("ok" if ok else "FAILED",
        f"batch {B}, 900+16 cells, hidden {config.hidden_size}, forward bfloat16 (logits {dtype}); first step with compilation "
        f"{compile_s:.1f} s, then {1000 * min(times):.1f} ms/step; compiled loss {first:.4f} vs eager "
        f"{reference:.4f} (relative difference {difference:.1e}, below 2e-2 wanted)")


def _hybrid(device: str, layout: str, backbone=None, **backbone_overrides):
    from hybrid_pipeline.config import load_config
    from hybrid_pipeline.hybrid import HybridConfig, HybridModel

    overrides = [f"layout={layout}", f"backbone.device={device}"]
    overrides += [f"backbone.{k}={v}" for k, v in backbone_overrides.items()]
    return HybridModel.from_config(load_config(HybridConfig, CONFIG, overrides), backbone=backbone).train()


GRID_IN = [[1, 2, 0], [3, 4, 0]]
GRID_OUT = [[4, 3, 0], [2, 1, 0]]
PROMPT = "Example 1\nInput:\n120\n340\nOutput:\n430\n210\n\nTest\nInput:\n120\n340\nOutput:\n"


def joint_step(device: str) -> None:
    import numpy as np
    import torch

    findings, failed = [], []
    first = _hybrid(device, "prompt_first")
    models = {"prompt_first": first, "prefix_first": _hybrid(device, "prefix_first", backbone=first.backbone)}
    batch = first.encode([PROMPT, PROMPT.replace("430", "431")], [np.array(GRID_IN)] * 2,
                         test_outputs=[np.array(GRID_OUT)] * 2)
    for layout, model in models.items():
        for autocast in (False, True):
            optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
            generator = torch.Generator(device=device).manual_seed(0)
            times = []
            for _ in range(3):  # the first warms up
                start = time.perf_counter()
                with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
                    out = model(batch, generator=generator)
                out.loss.backward()
                reached = all(p.grad is not None for p in model.refiner.parameters() if p.requires_grad)
                frozen = all(p.grad is None for p in model.backbone.parameters())
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                sync(device)
                times.append(time.perf_counter() - start)
            name = f"{layout}{' bf16 autocast' if autocast else ''}"
            if not (torch.isfinite(out.loss) and reached and frozen):
                failed.append(f"{name}: loss {out.loss.item()}, refiner grads {reached}, backbone untouched {frozen}")
            findings.append(f"{name} {1000 * min(times[1:]):.0f} ms (loss {out.loss.item():.3f})")
    model = models["prompt_first"].eval()
    with torch.no_grad():
        states = model.encode_prompt(batch["prompt_ids"], batch["prompt_mask"])
        computed = model(batch)
        stored = model({**batch, "prompt_hidden": states.hidden, "prompt_kv": states.kv})
    difference = float((stored.loss - computed.loss).abs())
    if difference > 1e-4 * float(computed.loss.abs()):
        failed.append(f"stored prompt states change the loss by {difference:.1e}")
    prediction = model.predict(batch, max_new_tokens=8)
    findings.append(f"stored prompt KV vs computed: loss differs by {difference:.1e}; predict gave "
                    f"{sum(len(t) for t in prediction.answer_texts)} answer characters")
    row("FAILED" if failed else "ok", "; ".join(failed + findings))


def backbone_4bit(device: str) -> None:
    if gone := missing("bitsandbytes", "peft"):
        row("skipped", f"{', '.join(gone)} not importable")
        return
    import numpy as np
    import torch

    model = _hybrid(device, "prompt_first", load_in_4bit="true", lora="true", dtype="bfloat16")
    where = {str(p.device) for p in model.backbone.parameters()}
    batch = model.encode([PROMPT], [np.array(GRID_IN)], test_outputs=[np.array(GRID_OUT)])
    out = model(batch, generator=torch.Generator(device=device).manual_seed(0))
    out.loss.backward()
    trained = [n for n, p in model.backbone.named_parameters() if p.grad is not None]
    only_lora = bool(trained) and all("lora_" in n for n in trained)
    prediction = model.predict(batch, max_new_tokens=8)
    packed = sum(1 for m in model.backbone.modules() if type(m).__name__ == "Linear4bit")
    ok = torch.isfinite(out.loss) and only_lora and packed > 0
    row("ok" if ok else "FAILED",
        f"{packed} Linear4bit layers on {', '.join(sorted(where))}; joint step loss {out.loss.item():.3f}, gradient "
        f"reaches {len(trained)} backbone tensors, {'all LoRA' if only_lora else 'NOT only LoRA'}; generated "
        f"{prediction.answer_texts[0]!r}")


CHECKS = {"trm_compiled": trm_compiled, "joint_step": joint_step, "backbone_4bit": backbone_4bit}


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in CHECKS or sys.argv[2] not in ("cuda", "cpu"):
        print(f"usage: python experiments/gpu_check.py {{{','.join(CHECKS)}}} {{cuda,cpu}}", file=sys.stderr)
        return 2
    if gone := missing("torch", "transformers", "yaml", "safetensors"):
        row("skipped", f"{', '.join(gone)} not importable")
        return 0
    import torch

    torch.set_float32_matmul_precision("high")  # TF32 matmuls on CUDA, as training there would use
    CHECKS[sys.argv[1]](sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
