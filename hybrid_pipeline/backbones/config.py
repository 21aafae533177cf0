"""`BackboneConfig`: which language model to load and how (dtype, quantisation, LoRA, layer).

One dataclass serves both kinds so YAML files and `key=value` overrides name the same fields; the
diffusion-only fields are ignored by the causal backbone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class BackboneLoadError(ValueError):
    """A backbone that cannot be loaded as configured; the message is one line naming the model."""


@dataclass
class BackboneConfig:
    kind: str = "causal"                      # "causal" | "diffusion"
    name_or_path: str = "tiny-random"         # local dir, hub id, "tiny-random" or "tiny-random-diffusion"
    dtype: str = "float32"                    # torch dtype name, or "auto" (the checkpoint's own)
    device: str | None = None                 # None: wherever from_pretrained puts it (CPU)
    trust_remote_code: bool = False           # LLaDA needs True; never on by default
    hidden_layer: int = -1                    # index into HF's hidden_states tuple (0 = embeddings)
    seed: int = 0                             # weights of the tiny random models only
    # Quantisation through bitsandbytes (BitsAndBytesConfig).
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    bnb_4bit_quant_type: str = "nf4"
    bnb_4bit_use_double_quant: bool = True
    bnb_4bit_compute_dtype: str | None = None  # None: same as dtype (float32 when dtype is "auto")
    # LoRA through peft (LoraConfig); the base weights stay frozen either way.
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    gradient_checkpointing: bool = False      # passed to prepare_model_for_kbit_training when quantised
    # Masked diffusion only.
    mask_token_id: int | None = None          # None: the tokenizer's mask token (LLaDA: 126336)
    bidirectional_mask: bool | None = None    # pass a 4D all-true mask; None: yes unless remote code

    def __post_init__(self):
        if self.kind not in ("causal", "diffusion"):
            raise ValueError(f"kind should be 'causal' or 'diffusion', got '{self.kind}'")
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("load_in_4bit and load_in_8bit are exclusive; choose one")
        self.lora_target_modules = tuple(self.lora_target_modules)

    @property
    def quantized(self) -> bool:
        return self.load_in_4bit or self.load_in_8bit

    def torch_dtype(self) -> torch.dtype | str:
        return "auto" if self.dtype == "auto" else resolve_dtype(self.dtype)


def resolve_dtype(name: str) -> torch.dtype:
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype '{name}'; expected a torch dtype name such as float32 or bfloat16")
    return value
