"""Benchmark answer generation on the tiny offline LLaMA: a 30x30 grid answer (930 tokens) per attempt.

Three ways to make `--attempts` answers to one task prompt (two 30x30 demonstration pairs and a
30x30 test input, about 4,700 tokens):

    plain model.generate        re-encodes the prompt every attempt, no constraint
    constrained, re-encode      CausalBackbone.generate(constrain_to_grid=True), prompt each time
    constrained, cached prompt  encode_prompt once, every attempt continues from a copy of its cache

Each mode runs `--repeats` times, interleaved, and its best time counts. Every attempt is forced to exactly 930 new tokens (min_new_tokens), so tokens/s compare like for
like; ratios are against the plain row in the same run.

    .venv/bin/python experiments/bench_generation.py [--attempts 4] [--pairs 2]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=2, help="30x30 demonstration pairs in the prompt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best time of each mode counts")
    args = parser.parse_args()

    import numpy as np
    import torch

    from hybrid_pipeline.arc.text import grid_to_text
    from hybrid_pipeline.backbones import BackboneConfig, load_backbone

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    grid = lambda: grid_to_text(rng.integers(0, 10, size=(30, 30)))  # noqa: E731
    prompt = "".join(f"Example {i + 1}\nInput:\n{grid()}Output:\n{grid()}\n" for i in range(args.pairs))
    prompt += f"Test\nInput:\n{grid()}Output:\n"
    answer_tokens = 30 * 31

    backbone = load_backbone(BackboneConfig())
    model, ids = backbone.model, backbone.tokenizer(prompt, return_tensors="pt").input_ids
    fixed = dict(max_new_tokens=answer_tokens, min_new_tokens=answer_tokens)

    def plain():
        for _ in range(args.attempts):
            model.generate(ids, do_sample=False, pad_token_id=backbone.tokenizer.pad_token_id, **fixed)

    def constrained():
        for _ in range(args.attempts):
            backbone.generate(ids, constrain_to_grid=True, **fixed)

    def cached():
        cache = backbone.encode_prompt(ids)
        for _ in range(args.attempts):
            backbone.generate(prompt_cache=cache, constrain_to_grid=True, **fixed)

    modes = [("plain model.generate", plain), ("constrained, re-encode", constrained),
             ("constrained, cached prompt", cached)]
    best = {name: float("inf") for name, _ in modes}
    with torch.no_grad():
        backbone.generate(ids, max_new_tokens=8)  # warm-up at the full prompt length
        for _ in range(args.repeats):  # interleaved, so load from other processes hits every mode alike
            for name, run in modes:
                start = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - start)
    rows = list(best.items())

    new_tokens = args.attempts * answer_tokens
    base = rows[0][1]
    print(f"tiny LLaMA (hidden 64, 2 layers), CPU {args.threads} threads, prompt {ids.shape[1]} tokens, "
          f"{args.attempts} attempts x {answer_tokens} tokens, best of {args.repeats}")
    print(f"{'mode':<28} {'seconds':>8} {'tokens/s':>9} {'speed vs plain':>15}")
    for name, seconds in rows:
        print(f"{name:<28} {seconds:8.2f} {new_tokens / seconds:9.0f} {base / seconds:14.2f}x")


if __name__ == "__main__":
    main()
