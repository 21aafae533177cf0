"""Frozen Hugging Face language models: causal (LLaMA family) and masked diffusion (LLaDA style)."""

from __future__ import annotations

from hybrid_pipeline.backbones.config import BackboneConfig, BackboneLoadError
from hybrid_pipeline.backbones.tiny import TINY_CAUSAL, TINY_DIFFUSION

__all__ = ["BackboneConfig", "BackboneLoadError", "TINY_CAUSAL", "TINY_DIFFUSION", "load_backbone"]


def load_backbone(config: BackboneConfig):
    """A `CausalBackbone` or `DiffusionBackbone`, as `config.kind` says."""
    if config.kind == "causal":
        from hybrid_pipeline.backbones.causal import CausalBackbone

        return CausalBackbone.from_config(config)
    from hybrid_pipeline.backbones.diffusion import DiffusionBackbone

    return DiffusionBackbone.from_config(config)
