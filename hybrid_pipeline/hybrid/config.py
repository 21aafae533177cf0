"""`HybridConfig`: everything needed to rebuild a `HybridModel`, validated when it is made.

The hybrid's parts each keep their own config (`TRMConfig`, the adapters' configs, `BackboneConfig`);
this one holds them and the choices that join them: the layout of the LM's sequence, the refiner,
the conditioning of the TRM and the loss weights. Saved as the `config.json` of a `HybridModel`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from adapters import FeedbackEmbedderConfig, LatentToTextConfig, SlotRefinerConfig, TextToLatentConfig
from hybrid_pipeline.backbones import BackboneConfig
from hybrid_pipeline.backbones.base import LAYOUTS
from hybrid_pipeline.trm import TRMConfig
from hybrid_pipeline.trm.losses import LOSS_FUNCTIONS

REFINERS = ("attention", "slot")
CONDITIONINGS = ("sum", "z_H", "z_L", "none")
DEFAULT_LAYOUTS = {"causal": "prompt_first", "diffusion": "prefix_first"}
LAYOUT_OF_OLD_CHECKPOINTS = "prefix_first"  # what a config.json without `layout` was trained with


@dataclass
class HybridConfig:
    """Everything needed to rebuild a `HybridModel` (the backbone by name or path, never its weights).

    The width fields of the adapter sections (llm_hidden, trm_hidden, num_positions, grid_side) are
    set by `HybridModel.from_config` from the loaded backbone and `trm`; values written there are
    replaced. A saved model keeps the widths it was built with, and `from_pretrained` refuses a
    backbone of another width, naming both. The layer whose hidden states feed the adapter is
    `backbone.hidden_layer`.
    """

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    # Where the refiner's prefix goes: "prompt_first" [prompt ; prefix ; answer] (the prompt's keys and
    # values are computed once and reused; causal backbones only) or "prefix_first" [prefix ; prompt ;
    # answer]. None: the backbone kind's default (causal prompt_first, diffusion prefix_first).
    layout: str | None = None
    trm: TRMConfig = field(default_factory=TRMConfig)
    text_to_latent: TextToLatentConfig = field(default_factory=TextToLatentConfig)
    refiner: str = "attention"  # "attention" (LatentToTextAdapter) | "slot" (SlotRefiner)
    latent_to_text: LatentToTextConfig = field(default_factory=LatentToTextConfig)
    slot_refiner: SlotRefinerConfig = field(default_factory=SlotRefinerConfig)
    use_vae: bool = False  # variational bottleneck on each cell's (z_H, z_L) from the adapter
    vae_latent_dim: int = 256
    feedback: bool = False  # a FeedbackEmbedder adds one prefix token when a batch carries `feedback`
    feedback_embedder: FeedbackEmbedderConfig = field(default_factory=FeedbackEmbedderConfig)
    # What the adapter adds to the TRM's input injection. The initial latents alone get no gradient at
    # H_cycles > 1 (their rounds run without grad); "sum" trains both halves of the adapter's output.
    conditioning: str = "sum"
    supervision_steps: int = 1  # TRM ACT steps per forward (carry detached between them, as the paper)
    loss_type: str = "stablemax"
    lm_weight: float = 1.0
    grid_weight: float = 1.0
    halt_weight: float = 0.5  # the paper's weight on the halting BCE
    kl_weight: float = 1e-3  # per-cell KL summed over the latent, averaged over cells; only with use_vae
    seed: int = 0  # initial weights of the trainable parts

    def __post_init__(self):
        if self.layout is None:
            self.layout = DEFAULT_LAYOUTS[self.backbone.kind]
        if self.layout not in LAYOUTS:
            raise ValueError(f"HybridConfig.layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.layout == "prompt_first" and self.backbone.kind != "causal":
            raise ValueError(f"HybridConfig.layout prompt_first needs a causal backbone; a {self.backbone.kind} "
                             "backbone attends both ways, so its prompt states depend on the prefix: use prefix_first")
        if self.refiner not in REFINERS:
            raise ValueError(f"HybridConfig.refiner must be one of {', '.join(REFINERS)}, got {self.refiner!r}")
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(f"HybridConfig.conditioning must be one of {', '.join(CONDITIONINGS)}, "
                             f"got {self.conditioning!r}")
        if self.loss_type not in LOSS_FUNCTIONS:
            raise ValueError(f"HybridConfig.loss_type must be one of {', '.join(LOSS_FUNCTIONS)}, "
                             f"got {self.loss_type!r}")
        if isinstance(self.supervision_steps, bool) or self.supervision_steps < 1:
            raise ValueError(f"HybridConfig.supervision_steps must be a positive integer, got {self.supervision_steps!r}")
        if self.supervision_steps > self.trm.halt_max_steps:
            # A step past halt_max_steps restarts every row from the injected latents, silently undoing it.
            raise ValueError(f"HybridConfig.supervision_steps ({self.supervision_steps}) must be <= "
                             f"trm.halt_max_steps ({self.trm.halt_max_steps})")
        for name in ("lm_weight", "grid_weight", "halt_weight", "kl_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"HybridConfig.{name} must be >= 0, got {getattr(self, name)!r}")

    @property
    def canvas(self) -> int:
        """Side of the TRM's square grid canvas (30 for ARC's 900 cells)."""
        side = math.isqrt(self.trm.seq_len)
        if side * side != self.trm.seq_len:
            raise ValueError(f"trm.seq_len {self.trm.seq_len} is not a square canvas; ARC grids need side**2 cells")
        return side

    def with_widths(self, llm_hidden: int) -> HybridConfig:
        """A copy whose adapter sections have the backbone's width and the TRM's width and length.

        Only the refiner in use is touched: the other's config may not accept this TRM width.
        """
        D, L = self.trm.hidden_size, self.trm.seq_len
        changes: dict[str, Any] = {
            "text_to_latent": dataclasses.replace(self.text_to_latent, llm_hidden=llm_hidden, trm_hidden=D,
                                                  num_positions=L),
            "feedback_embedder": dataclasses.replace(self.feedback_embedder, llm_hidden=llm_hidden),
        }
        if self.refiner == "slot":
            changes["slot_refiner"] = dataclasses.replace(self.slot_refiner, llm_hidden=llm_hidden, trm_hidden=D)
        else:
            changes["latent_to_text"] = dataclasses.replace(self.latent_to_text, llm_hidden=llm_hidden, trm_hidden=D,
                                                            grid_side=self.canvas)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        from hybrid_pipeline.config import config_to_dict

        return config_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "HybridConfig") -> HybridConfig:
        from hybrid_pipeline.config import config_from_dict

        return config_from_dict(cls, values, source=source)
