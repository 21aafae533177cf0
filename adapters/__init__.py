"""Adapters between the language model and the TRM: tensors in, tensors out, torch only."""

from adapters.feedback import FeedbackEmbedder, FeedbackEmbedderConfig, problem_counts
from adapters.latent_to_text import LatentToTextAdapter, LatentToTextConfig
from adapters.slot_refiner import SlotRefiner, SlotRefinerConfig, SlotRefinerStats
from adapters.text_to_latent import TextToLatentAdapter, TextToLatentConfig
from adapters.vae import VAEAdapter, VAEOutput

__all__ = ["FeedbackEmbedder", "FeedbackEmbedderConfig", "LatentToTextAdapter", "LatentToTextConfig", "SlotRefiner",
           "SlotRefinerConfig", "SlotRefinerStats", "TextToLatentAdapter", "TextToLatentConfig", "VAEAdapter",
           "VAEOutput", "problem_counts"]
