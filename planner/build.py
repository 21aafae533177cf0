"""Build an ARCPlanner from names: which proposers, which backbone, which checkpoints.

The offline default is the tiny-random backbone and untrained TRM/hybrid weights, so that the loop
runs anywhere; `random_weights` lists every part whose weights are random, and the CLI says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from planner.planner import ARCPlanner, PlannerConfig

PROPOSERS = ("hybrid", "llm", "trm", "program")

# The untrained hybrid used when no --hybrid checkpoint is given: small enough for a CPU, on the
# full 30x30 canvas (the same sizes as experiments/configs/hybrid_tiny.yaml).
UNTRAINED_HYBRID = {
    "trm": {"hidden_size": 64, "num_heads": 4, "L_layers": 2, "halt_max_steps": 4, "forward_dtype": "float32"},
    "text_to_latent": {"compress_dim": 64, "num_heads": 4},
    "latent_to_text": {"num_queries": 8, "mlp_hidden": 128},
}


@dataclass
class PlanSetup:
    proposers: tuple[str, ...] = ("hybrid", "llm", "trm")
    backbone: str = "tiny-random"
    backbone_kind: str = "causal"
    trm: str | None = None  # a TRM export dir (hybrid-arc trm train); None: an untrained TRM
    hybrid: str | None = None  # a hybrid export dir (joint training); None: untrained adapters and TRM
    attempts: int = 4  # per test input
    consistency_checks: bool = True  # leave-one-out and augmentation checks for the hybrid and LLM proposers
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.proposers = tuple(p.strip() for p in self.proposers if p.strip())
        unknown = [p for p in self.proposers if p not in PROPOSERS]
        if unknown or not self.proposers:
            raise ValueError(f"unknown proposers {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(PROPOSERS)}")
        if self.backbone_kind not in ("causal", "diffusion"):
            raise ValueError(f"backbone kind must be causal or diffusion, got {self.backbone_kind!r}")
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")


def build_planner(setup: PlanSetup) -> tuple[ARCPlanner, dict[str, Any]]:
    """The planner and a description of what it is made of (for summary.json and the report)."""
    from adapters.feedback import FeedbackFormatter
    from planner import proposers as P
    from verifier import GridVerifier

    backbone = None
    if {"hybrid", "llm", "program"} & set(setup.proposers):
        from hybrid_pipeline.backbones import BackboneConfig, load_backbone

        backbone = load_backbone(BackboneConfig(kind=setup.backbone_kind, name_or_path=setup.backbone,
                                                seed=setup.seed))
    built = []
    for name in setup.proposers:
        if name == "trm":
            built.append(P.TRMProposer.from_checkpoint(setup.trm) if setup.trm else P.TRMProposer.untrained(seed=setup.seed))
        elif name == "llm":
            from hybrid_pipeline.baseline import BackboneAnswerModel

            built.append(P.LLMProposer(BackboneAnswerModel(backbone)))
        elif name == "program":
            from hybrid_pipeline.baseline import BackboneAnswerModel

            built.append(P.ProgramProposer(BackboneAnswerModel(backbone, constrain_to_grid=False,
                                                               stop_at_grid_end=False)))
        else:
            built.append(P.HybridProposer(_hybrid(setup, backbone), random_weights=setup.hybrid is None))
    random_parts = [f"{p.name} proposer" for p in built if getattr(p, "random_weights", False)]
    meta = {"proposers": list(setup.proposers), "backbone": setup.backbone, "backbone_kind": setup.backbone_kind,
            "trm": setup.trm, "hybrid": setup.hybrid, "attempts_per_input": setup.attempts,
            "consistency_checks": setup.consistency_checks, "random_weights": random_parts}
    config = PlannerConfig(attempts_per_input=setup.attempts, consistency_checks=setup.consistency_checks)
    planner = ARCPlanner(built, GridVerifier(), FeedbackFormatter(), config)
    return planner, meta


def _hybrid(setup: PlanSetup, backbone):
    from hybrid_pipeline.config import config_from_dict
    from hybrid_pipeline.hybrid import HybridConfig, HybridModel

    if setup.hybrid:
        return HybridModel.from_pretrained(setup.hybrid, backbone=backbone)
    config = config_from_dict(HybridConfig, {**UNTRAINED_HYBRID, "seed": setup.seed,
                                             "backbone": {"name_or_path": setup.backbone,
                                                          "kind": setup.backbone_kind}})
    return HybridModel.from_config(config, backbone=backbone)
