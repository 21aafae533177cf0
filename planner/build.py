"""Build an ARCPlanner from names: which proposers, which backbone, which checkpoints.

The offline default is program search over the grid DSL, which needs no weights. Passing trained
parts brings their proposers in beside it: `--trm DIR` the TRM, `--hybrid DIR` the hybrid, a
`--backbone` other than tiny-random the LLM; `--proposers` names them outright. Model proposers
asked for without trained parts use the tiny-random backbone and untrained TRM/hybrid weights, so
the loop runs anywhere; `random_weights` lists every part whose weights are random, and the CLI says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hybrid_pipeline.dsl.search import SearchConfig
from planner.planner import ARCPlanner, PlannerConfig

PROPOSERS = ("search", "hybrid", "llm", "trm", "program")
DEFAULT_BACKBONE = "tiny-random"

# The untrained hybrid used when no --hybrid checkpoint is given: small enough for a CPU, on the
# full 30x30 canvas (the same sizes as experiments/configs/hybrid_tiny.yaml).
UNTRAINED_HYBRID = {
    "trm": {"hidden_size": 64, "num_heads": 4, "L_layers": 2, "halt_max_steps": 4, "forward_dtype": "float32"},
    "text_to_latent": {"compress_dim": 64, "num_heads": 4},
    "latent_to_text": {"num_queries": 8, "mlp_hidden": 128},
}


@dataclass
class PlanSetup:
    proposers: tuple[str, ...] | None = None  # None: search, plus the model proposers of the parts given
    backbone: str = DEFAULT_BACKBONE
    backbone_kind: str = "causal"
    trm: str | None = None  # a TRM export dir (hybrid-arc trm train); None: an untrained TRM
    # test-time training steps per task: the trm proposer's new puzzle rows for a task it never trained on
    # (trm.ttt), the llm proposer's LoRA adapter (backbones.ttt); 0: none
    ttt_steps: int = 0
    ttt_init: str = "mean"  # where the trm proposer's new rows start: "mean" or "nearest" (trm.ttt.TTTConfig.init)
    hybrid: str | None = None  # a hybrid export dir (joint training); None: untrained adapters and TRM
    attempts: int = 4  # per test input
    consistency_checks: bool = True  # leave-one-out and augmentation checks for the hybrid and LLM proposers
    seed: int = 0
    search_budget: int = SearchConfig.max_expansions  # states the search expands per task (deterministic)
    search_depth: int = SearchConfig.max_depth
    search_seconds: float | None = SearchConfig.max_seconds  # wall-clock cap per task search
    search_feedback: bool = True  # verifier problems steer the search's next round
    search_order: str = SearchConfig.order  # which states of a level the search expands first
    search_view_budget: int = SearchConfig.view_budget  # the colours-by-rank view's, when nothing fits
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.proposers is None:
            self.proposers = default_proposers(self)
        self.proposers = tuple(p.strip() for p in self.proposers if p.strip())
        unknown = [p for p in self.proposers if p not in PROPOSERS]
        if unknown or not self.proposers:
            raise ValueError(f"unknown proposers {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(PROPOSERS)}")
        if self.backbone_kind not in ("causal", "diffusion"):
            raise ValueError(f"backbone kind must be causal or diffusion, got {self.backbone_kind!r}")
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        self.trm_ttt_config()  # checks the test-time training settings
        self.search_config()  # checks the search settings

    def trm_ttt_config(self):
        from hybrid_pipeline.trm.ttt import TTTConfig

        return TTTConfig(steps=self.ttt_steps, seed=self.seed, init=self.ttt_init)

    def llm_ttt_config(self):
        from hybrid_pipeline.backbones.ttt import TTTConfig

        return TTTConfig(steps=self.ttt_steps, seed=self.seed)

    def search_config(self) -> SearchConfig:
        return SearchConfig(max_expansions=self.search_budget, max_depth=self.search_depth,
                            max_seconds=self.search_seconds, order=self.search_order,
                            view_budget=self.search_view_budget)


def default_proposers(setup: PlanSetup) -> tuple[str, ...]:
    """Search, joined by the proposer of each trained part the setup names."""
    joined = [name for name, given in (("hybrid", setup.hybrid), ("trm", setup.trm),
                                       ("llm", setup.backbone != DEFAULT_BACKBONE)) if given]
    return ("search", *joined)


def build_planner(setup: PlanSetup) -> tuple[ARCPlanner, dict[str, Any]]:
    """The planner and a description of what it is made of (for summary.json and the report)."""
    from verifier.feedback import FeedbackFormatter
    from planner import proposers as P
    from verifier import GridVerifier

    backbone = None
    if {"hybrid", "llm", "program"} & set(setup.proposers):
        from hybrid_pipeline.backbones import BackboneConfig, load_backbone

        backbone = load_backbone(BackboneConfig(kind=setup.backbone_kind, name_or_path=setup.backbone,
                                                seed=setup.seed))
    trm_ttt = setup.trm_ttt_config()
    built = []
    for name in setup.proposers:
        if name == "search":
            built.append(P.SearchProposer(setup.search_config(), use_feedback=setup.search_feedback))
        elif name == "trm":
            built.append(P.TRMProposer.from_checkpoint(setup.trm, ttt=trm_ttt) if setup.trm
                         else P.TRMProposer.untrained(seed=setup.seed, ttt=trm_ttt))
        elif name == "llm":
            from hybrid_pipeline.backbones.answer import BackboneAnswerModel

            built.append(P.LLMProposer(BackboneAnswerModel(backbone), ttt=setup.llm_ttt_config()))
        elif name == "program":
            from hybrid_pipeline.backbones.answer import BackboneAnswerModel

            built.append(P.ProgramProposer(BackboneAnswerModel(backbone, constrain_to_grid=False,
                                                               stop_at_grid_end=False)))
        else:
            built.append(P.HybridProposer(_hybrid(setup, backbone), random_weights=setup.hybrid is None))
    random_parts = [f"{p.name} proposer" for p in built if getattr(p, "random_weights", False)]
    meta = {"proposers": list(setup.proposers), "backbone": setup.backbone, "backbone_kind": setup.backbone_kind,
            "trm": setup.trm, "hybrid": setup.hybrid, "attempts_per_input": setup.attempts,
            "consistency_checks": setup.consistency_checks, "seed": setup.seed, "random_weights": random_parts}
    if setup.ttt_steps:  # absent otherwise, as in runs made before the option
        meta["ttt_steps"] = setup.ttt_steps
    if "trm" in setup.proposers and trm_ttt.adapts:
        meta["trm_ttt"] = trm_ttt.to_dict()
    if "search" in setup.proposers:
        meta["search"] = {"budget": setup.search_budget, "depth": setup.search_depth,
                          "seconds_cap": setup.search_seconds, "feedback": setup.search_feedback,
                          "order": setup.search_order, "view_budget": setup.search_view_budget}
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
