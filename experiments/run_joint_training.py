"""Joint training of the hybrid (frozen LM + adapters + TRM + refiner): `hybrid_pipeline.joint.train_joint` as a script.

    python experiments/run_joint_training.py --config experiments/configs/joint_tiny.yaml [key=value ...]
    accelerate launch experiments/run_joint_training.py --config experiments/configs/joint_tiny.yaml
    accelerate launch --config_file experiments/configs/accelerate_fsdp.yaml experiments/run_joint_training.py \
        --config experiments/configs/joint_llama.yaml model.backbone.name_or_path=/models/llama
    ACCELERATE_USE_CPU=1 torchrun --standalone --nproc_per_node 2 experiments/run_joint_training.py --config ...

`key=value` overrides any config field (dotted for nested ones: `model.trm.hidden_size=32`).
`--resume` continues from `out_dir/checkpoints/latest.json` with the same data order and schedule
(starting fresh when there is no checkpoint yet). Writes `out_dir/train_log.jsonl`, checkpoints,
`final/` (the trained parts, `HybridModel.from_pretrained` loads it), `eval/*_submission.json` and
`summary.json`. Exit 0 on success; 2 on a bad config, data, backbone or checkpoint, with one line per
problem on stderr and before any training step; 1 on internal faults.
"""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML file of JointTrainConfig values (default: the dataclass defaults)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in out_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. max_steps=50")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hybrid_pipeline.arc.errors import ARCDataError
    from hybrid_pipeline.backbones.config import BackboneLoadError
    from hybrid_pipeline.config import ConfigError, load_config
    from hybrid_pipeline.joint import JointTrainConfig, train_joint
    from hybrid_pipeline.trm.checkpoint import CheckpointError

    try:
        config = load_config(JointTrainConfig, args.config, args.overrides)
        result = train_joint(config, resume=args.resume, progress=not args.quiet)
    except (ConfigError, ARCDataError, BackboneLoadError, CheckpointError) as e:
        # under torchrun every process meets the same error; one report is enough
        if os.environ.get("RANK", "0") == "0":
            for problem in getattr(e, "problems", None) or [e]:
                print(f"error: {problem}", file=sys.stderr)
        return 2
    if not result.is_main_process:
        return 0
    print(f"trained {result.steps} steps; trained parts exported to {result.final_dir}")
    if result.eval is not None:
        trm, lm = result.eval["trm"], result.eval["lm"]
        print(f"held-out tasks ({trm['tasks']}, {trm['test_outputs']} test outputs), 2 attempts: "
              f"TRM grid {100 * trm['task_score']:.2f}% per task ({100 * trm['output_score']:.2f}% per output), "
              f"LM answer {100 * lm['task_score']:.2f}% per task ({100 * lm['output_score']:.2f}% per output)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
