"""Tiny Recursive Model (arXiv 2510.04871): model, losses, optimisers, reference-checkpoint loading."""

from hybrid_pipeline.trm.config import TRMConfig
from hybrid_pipeline.trm.losses import StepLoss, SupervisionWeighting, act_loss, summarize_metrics
from hybrid_pipeline.trm.model import TRM, TRMCarry
from hybrid_pipeline.trm.optim import EMA, AdamAtan2, SparseSignSGD
from hybrid_pipeline.trm.reference import ReferenceCheckpointError, load_reference_checkpoint

__all__ = [
    "TRM", "TRMCarry", "TRMConfig", "StepLoss", "SupervisionWeighting", "act_loss", "summarize_metrics",
    "AdamAtan2", "SparseSignSGD", "EMA", "ReferenceCheckpointError", "load_reference_checkpoint",
]
