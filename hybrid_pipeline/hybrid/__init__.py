"""The hybrid, in the shape of a Hugging Face model: `HybridConfig` (config.py), `HybridModel`
(model.py: the module, its forward, generation and save/load), the tensors it returns (outputs.py),
and `HybridProcessor` (`hybrid_pipeline.processor`) for its text and grids."""

from hybrid_pipeline.hybrid.config import DEFAULT_LAYOUTS, LAYOUT_OF_OLD_CHECKPOINTS, HybridConfig
from hybrid_pipeline.hybrid.model import HybridModel
from hybrid_pipeline.hybrid.outputs import HybridGeneration, HybridOutput, HybridPrediction, ParameterReport

__all__ = ["DEFAULT_LAYOUTS", "LAYOUT_OF_OLD_CHECKPOINTS", "HybridConfig", "HybridGeneration", "HybridModel",
           "HybridOutput", "HybridPrediction", "ParameterReport"]
