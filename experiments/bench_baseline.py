"""Benchmark the LLM-only baseline on the tiny random LLaMA: prompt-cache reuse, and grid-token rate
against a plain `model.generate` on the same prompts.

Runs `run_baseline` on the first `--tasks` tasks of arc-agi-1:evaluation (2 answers per prompt, the
second sampled) in two settings:

    own answers    what the random model writes (it stops at EOS or when the grid has ended)
    forced         every answer is exactly `--answer-tokens` tokens (EOS banned with
                   min_new_tokens, grid-end stop off): the decode rate of a full-size answer

and replays exactly the same answers (same prompts, same number of new tokens, greedy or sampled)
through a plain `model.generate` call, which re-encodes the prompt every time and has no constraint.
Baseline seconds are run_baseline's per-task times: prompting, generation, parsing, voting (file
writes excluded). Modes are interleaved `--repeats` times and the best time of each counts; ratios
are against the plain row of the same setting.

    .venv/bin/python experiments/bench_baseline.py [--tasks 3] [--answer-tokens 465] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3, help="first N tasks of arc-agi-1:evaluation")
    parser.add_argument("--answer-tokens", type=int, default=465, help="answer length in the forced setting")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="1: on 2 shared cores a second thread stalls when another process runs")
    args = parser.parse_args()

    import torch

    from hybrid_pipeline.backbones import BackboneConfig, load_backbone
    from hybrid_pipeline.backbones.answer import BackboneAnswerModel, GridEndStop
    from hybrid_pipeline.baseline import BaselineConfig, run_baseline

    torch.set_num_threads(args.threads)
    backbone = load_backbone(BackboneConfig())

    class RecordingModel(BackboneAnswerModel):
        """Remembers every answer's prompt, sampling and length, so plain generate can replay them."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.log: list[tuple[torch.Tensor, float | None, int]] = []

        def _continue(self, ids, cache, temperature, max_new_tokens, seed):
            before = self.tokens_generated
            text = super()._continue(ids, cache, temperature, max_new_tokens, seed)
            self.log.append((ids, temperature, self.tokens_generated - before))
            return text

    def baseline(cache: bool, forced: bool):
        extra = {"min_new_tokens": args.answer_tokens} if forced else {}
        model = RecordingModel(backbone, reuse_prompt_cache=cache, stop_at_grid_end=not forced,
                               generate_kwargs=extra)
        with tempfile.TemporaryDirectory() as out:
            config = BaselineConfig(data="arc-agi-1:evaluation", limit=args.tasks, out_dir=out,
                                    max_new_tokens=args.answer_tokens if forced else None)
            summary = run_baseline(config, model=model, progress=False)
        return summary["seconds"], summary["tokens_generated"], model.log

    def plain(log):
        start = time.perf_counter()
        for ids, temperature, n in log:
            sampling = {"do_sample": True, "temperature": temperature} if temperature is not None else {"do_sample": False}
            backbone.model.generate(ids, max_new_tokens=n, min_new_tokens=n,
                                    pad_token_id=backbone.tokenizer.pad_token_id, **sampling)
        return time.perf_counter() - start

    rows: dict[tuple[str, str], list[float]] = {}  # (setting, mode) -> [best seconds, tokens, answers]
    with torch.no_grad():
        baseline(cache=True, forced=False)  # warm-up
        for _ in range(args.repeats):
            for setting, forced in (("own answers", False), (f"forced {args.answer_tokens}", True)):
                for mode, cache in (("baseline, re-encode", False), ("baseline, cached prompt", True)):
                    seconds, tokens, log = baseline(cache, forced)
                    best = rows.setdefault((setting, mode), [float("inf"), tokens, len(log)])
                    best[0] = min(best[0], seconds)
                seconds = plain(log)
                best = rows.setdefault((setting, "plain model.generate"), [float("inf"), tokens, len(log)])
                best[0] = min(best[0], seconds)

    stop, ids = GridEndStop(10, range(10)), torch.randint(0, 11, (1, args.answer_tokens))
    start = time.perf_counter()
    for _ in range(2000):
        stop(ids)
    stop_us = (time.perf_counter() - start) / 2000 * 1e6

    print(f"tiny LLaMA (hidden 64, 2 layers, random weights), CPU {args.threads} threads, "
          f"{args.tasks} tasks of arc-agi-1:evaluation, 2 answers per prompt, best of {args.repeats}")
    print(f"{'setting':<12} {'mode':<24} {'answers':>7} {'tokens':>7} {'seconds':>8} {'s/task':>7} "
          f"{'tokens/s':>9} {'rate vs plain':>14}")
    for setting in dict.fromkeys(s for s, _ in rows):
        base = rows[(setting, "plain model.generate")]
        for mode in ("plain model.generate", "baseline, re-encode", "baseline, cached prompt"):
            seconds, tokens, answers = rows[(setting, mode)]
            rate, base_rate = tokens / seconds, base[1] / base[0]
            print(f"{setting:<12} {mode:<24} {answers:7d} {tokens:7.0f} {seconds:8.2f} {seconds / args.tasks:7.2f} "
                  f"{rate:9.0f} {rate / base_rate:13.2f}x")
    print(f"grid-end stop check: {stop_us:.0f} us per generated token")


if __name__ == "__main__":
    main()
