"""Load a Hugging Face model and tokenizer for a `BackboneConfig`, or fail with one clear line.

Both backbone kinds load the same way: the tiny offline models by name, a local directory with
`local_files_only`, or a hub id (no download attempt when `HF_HUB_OFFLINE` is set). Quantisation
goes through `BitsAndBytesConfig` and LoRA through peft. A checkpoint with missing weights (an LM
head above all) is refused: transformers would otherwise fill them with random values silently.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hybrid_pipeline.backbones.config import BackboneConfig, BackboneLoadError, resolve_dtype
from hybrid_pipeline.backbones.tiny import TINY_NAMES, load_tiny, save_tiny


LM_HEAD_NAMES = ("lm_head", "ff_out", "embed_out")  # LLaMA/Qwen/Mistral, LLaDA, GPT-NeoX


@dataclass
class LoadedModel:
    model: nn.Module
    tokenizer: Any
    random_weights: bool


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_model(config: BackboneConfig, auto_classes: tuple[type, ...]) -> LoadedModel:
    """Load `config.name_or_path` with the first of `auto_classes` that accepts its config."""
    name = config.name_or_path
    if name in TINY_NAMES:
        if not config.quantized:
            model, tokenizer = load_tiny(name, seed=config.seed, dtype=resolve_dtype(config.dtype)
                                         if config.dtype != "auto" else torch.float32)
            return _finish(LoadedModel(model.to(config.device or "cpu"), tokenizer, True), config)
        # bitsandbytes quantises while loading, so the tiny model takes the real from_pretrained path.
        with tempfile.TemporaryDirectory() as tmp:
            save_tiny(tmp, seed=config.seed)
            loaded = _from_pretrained(config, tmp, auto_classes, local_files_only=True)
        return _finish(LoadedModel(loaded.model, loaded.tokenizer, True), config)

    path = Path(name).expanduser()
    if path.is_dir():
        return _finish(_from_pretrained(config, str(path), auto_classes, local_files_only=True), config)
    if path.exists() or name.startswith(("/", "./", "../", "~")) or name.count("/") > 1:
        raise BackboneLoadError(f"backbone '{name}': no such model directory")
    return _finish(_from_pretrained(config, name, auto_classes, local_files_only=hub_offline()), config)


def _quantization_config(config: BackboneConfig):
    if not config.quantized:
        return None
    from transformers import BitsAndBytesConfig
    from transformers.utils import is_bitsandbytes_available

    flag = "load_in_4bit" if config.load_in_4bit else "load_in_8bit"
    if not is_bitsandbytes_available():
        raise BackboneLoadError(f"backbone '{config.name_or_path}': {flag} needs a working bitsandbytes; "
                                "install it with `pip install bitsandbytes` or turn quantisation off")
    compute = config.bnb_4bit_compute_dtype or (config.dtype if config.dtype != "auto" else "float32")
    return BitsAndBytesConfig(load_in_4bit=config.load_in_4bit, load_in_8bit=config.load_in_8bit,
                              bnb_4bit_quant_type=config.bnb_4bit_quant_type,
                              bnb_4bit_use_double_quant=config.bnb_4bit_use_double_quant,
                              bnb_4bit_compute_dtype=resolve_dtype(compute))


def _from_pretrained(config: BackboneConfig, source: str, auto_classes: tuple[type, ...], *,
                     local_files_only: bool) -> LoadedModel:
    from transformers import AutoTokenizer

    quantization = _quantization_config(config)
    kwargs: dict[str, Any] = dict(dtype=config.torch_dtype(), trust_remote_code=config.trust_remote_code,
                                  local_files_only=local_files_only, output_loading_info=True)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        if config.device is not None:
            kwargs["device_map"] = {"": config.device}
    where = "local directory" if local_files_only and Path(source).is_dir() else "model id"
    offline = " (HF_HUB_OFFLINE is set, so nothing was downloaded)" if local_files_only and where == "model id" else ""
    errors = []
    for auto_class in auto_classes:
        try:
            model, info = auto_class.from_pretrained(source, **kwargs)
            break
        except OSError as e:
            raise BackboneLoadError(f"backbone '{config.name_or_path}': cannot load {where}{offline}: "
                                    f"{_first_line(e)}") from None
        except ImportError as e:
            raise BackboneLoadError(f"backbone '{config.name_or_path}': {_first_line(e)}") from None
        except ValueError as e:  # the config's model type is not one this auto class builds
            errors.append(f"{auto_class.__name__}: {_first_line(e)}")
    else:
        raise BackboneLoadError(f"backbone '{config.name_or_path}': no usable model class; " + "; ".join(errors))
    missing = list(info.get("missing_keys", ()))
    if missing:
        head = any(name in key for key in missing for name in LM_HEAD_NAMES)
        what = "its LM head" if head else "some weights"
        raise BackboneLoadError(f"backbone '{config.name_or_path}': checkpoint lacks {what} "
                                f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
                                "refusing to fill them with random values")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only,
                                                  trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as e:
        raise BackboneLoadError(f"backbone '{config.name_or_path}': cannot load its tokenizer: "
                                f"{_first_line(e)}") from None
    return LoadedModel(model, tokenizer, random_weights=False)


def _finish(loaded: LoadedModel, config: BackboneConfig) -> LoadedModel:
    """Freeze the weights, then (optionally) prepare for k-bit training and add LoRA adapters."""
    model = loaded.model
    if config.device is not None and not config.quantized:
        model = model.to(config.device)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if config.lora:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if config.quantized:
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=config.gradient_checkpointing)
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.lora_target_modules), task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    loaded.model = model.eval()
    return loaded


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
