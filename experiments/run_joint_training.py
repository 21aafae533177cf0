"""Joint training of the hybrid (frozen LM + adapters + TRM + refiner): `hybrid-arc joint train` as a script.

    python experiments/run_joint_training.py --config experiments/configs/joint_tiny.yaml [key=value ...]
    accelerate launch experiments/run_joint_training.py --config experiments/configs/joint_tiny.yaml
    accelerate launch --config_file experiments/configs/accelerate_fsdp.yaml experiments/run_joint_training.py \
        --config experiments/configs/joint_llama.yaml model.backbone.name_or_path=/models/llama
    ACCELERATE_USE_CPU=1 torchrun --standalone --nproc_per_node 2 experiments/run_joint_training.py --config ...

The same flags as `hybrid-arc joint train` (which calls `hybrid_pipeline.joint.train_joint`):
`key=value` overrides any config field (dotted for nested ones: `model.trm.hidden_size=32`);
`--resume` continues from `out_dir/checkpoints/latest.json` with the same data order and schedule
(starting fresh, and saying so, when there is no checkpoint yet); `--overwrite` replaces the run in
out_dir; `--quiet` turns the progress bars off. Writes `out_dir/train_log.jsonl`, checkpoints,
`final/` (the trained parts, `HybridModel.from_pretrained` loads it), `eval/*_submission.json` and
`summary.json`. Exit 0 on success; 2 on a bad config, data, backbone, checkpoint or out dir, with one
line per problem on stderr and before any training step; 130 / 143 after SIGINT / SIGTERM (a
checkpoint of the step in progress is written first); 1 on internal faults.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from hybrid_pipeline.cli import main as cli_main

    return cli_main(["joint", "train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
