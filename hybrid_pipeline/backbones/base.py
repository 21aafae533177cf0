"""What the causal and the diffusion backbone share: a wrapped Hugging Face model, frozen unless LoRA
adapters train, and the model facts the hybrid reads from it (width, device, dtype, embeddings)."""

from __future__ import annotations

import torch
from torch import nn

from hybrid_pipeline.backbones.config import BackboneConfig


class FrozenBackbone(nn.Module):
    """A loaded language model with its tokenizer; weights frozen (requires_grad False, eval mode)."""

    def __init__(self, model: nn.Module, tokenizer, config: BackboneConfig, random_weights: bool):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.random_weights = random_weights

    def train(self, mode: bool = True):
        """Stays in eval mode unless LoRA adapters are there to train."""
        return super().train(mode and self.config.lora)

    @property
    def hidden_size(self) -> int:
        return self.model.config.get_text_config().hidden_size

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings [B,T] -> [B,T,D]."""
        return self.model.get_input_embeddings()(input_ids)
