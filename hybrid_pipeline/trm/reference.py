"""Load checkpoints written by the public TRM code (github.com/SamsungSAILMontreal/TinyRecursiveModels).

Its `pretrain.py` saves `torch.save(model.state_dict())` of a torch.compile'd loss head, so keys look
like `_orig_mod.model.inner.L_level.layers.0.self_attn.qkv_proj.weight`. The prefixes `_orig_mod.`
(torch.compile), `model.` (loss head) and `inner.` (ACT wrapper) are stripped when present, then:

    reference key                                  ours
    embed_tokens.embedding_weight                  embed_tokens.weight
    embed_pos.embedding_weight                     embed_pos.weight
    puzzle_emb.weights                             puzzle_emb.weight
    lm_head.weight                                 lm_head.weight
    q_head.weight / q_head.bias                    q_head.weight / q_head.bias   (rows: halt, continue)
    H_init / L_init                                H_init / L_init               (stored in bf16 there)
    L_level.layers.{i}.self_attn.qkv_proj.weight   net.layers.{i}.attn.qkv.weight
    L_level.layers.{i}.self_attn.o_proj.weight     net.layers.{i}.attn.proj.weight
    L_level.layers.{i}.mlp_t.gate_up_proj.weight   net.layers.{i}.token_mlp.gate_up.weight
    L_level.layers.{i}.mlp_t.down_proj.weight      net.layers.{i}.token_mlp.down.weight
    L_level.layers.{i}.mlp.gate_up_proj.weight     net.layers.{i}.mlp.gate_up.weight
    L_level.layers.{i}.mlp.down_proj.weight        net.layers.{i}.mlp.down.weight

Both layouts agree (fused qkv heads ordered q, k, v; fused gate then up), so no tensor is permuted.
Tensors are returned in float32. Files may be a torch pickle (as saved there, weights only) or
.safetensors.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from hybrid_pipeline.trm.config import TRMConfig

_PREFIXES = ("_orig_mod.", "model.", "inner.")
_RENAMES = [
    (r"^embed_tokens\.embedding_weight$", "embed_tokens.weight"),
    (r"^embed_pos\.embedding_weight$", "embed_pos.weight"),
    (r"^puzzle_emb\.weights$", "puzzle_emb.weight"),
    (r"^(lm_head\.weight|q_head\.weight|q_head\.bias|H_init|L_init)$", r"\1"),
    (r"^L_level\.layers\.(\d+)\.self_attn\.qkv_proj\.weight$", r"net.layers.\1.attn.qkv.weight"),
    (r"^L_level\.layers\.(\d+)\.self_attn\.o_proj\.weight$", r"net.layers.\1.attn.proj.weight"),
    (r"^L_level\.layers\.(\d+)\.mlp_t\.(gate_up|down)_proj\.weight$", r"net.layers.\1.token_mlp.\2.weight"),
    (r"^L_level\.layers\.(\d+)\.mlp\.(gate_up|down)_proj\.weight$", r"net.layers.\1.mlp.\2.weight"),
]


class ReferenceCheckpointError(ValueError):
    """A reference checkpoint could not be read or does not fit the requested TRMConfig."""


def reference_key_to_ours(key: str) -> str | None:
    """Our parameter name for a reference state-dict key, or None if it has no counterpart."""
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
    for pattern, replacement in _RENAMES:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    return None


def _read(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reference checkpoint not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # torch/safetensors raise many types for truncated or foreign files
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReferenceCheckpointError(f"{path}: not a readable TRM checkpoint ({first_line})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ReferenceCheckpointError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def load_reference_checkpoint(path: str | Path, config: TRMConfig | None = None) -> dict[str, torch.Tensor]:
    """Read a reference checkpoint and return a state dict for `TRM`.

    With `config`, every tensor is checked against the shapes `TRM(config)` expects and any key the
    model needs but the file lacks is reported; the puzzle table must match too (the reference
    silently re-initialises a mismatched one; here that is an error, since it loses the training).
    Unknown reference keys are an error rather than being dropped.
    """
    path = Path(path)
    state = _read(path)
    ours: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state.items():
        name = reference_key_to_ours(key)
        if name is None:
            unknown.append(key)
        else:
            ours[name] = tensor.detach().to(torch.float32)
    if unknown:
        raise ReferenceCheckpointError(f"{path}: keys with no TRM counterpart: {', '.join(sorted(unknown))}")
    if config is not None:
        check_shapes(ours, config, source=str(path))
    return ours


def check_shapes(state: dict[str, torch.Tensor], config: TRMConfig, source: str) -> None:
    """Raise naming the first key whose shape differs from `TRM(config)`, or the keys missing."""
    from hybrid_pipeline.trm.model import TRM

    with torch.device("meta"):
        expected = TRM(config).state_dict()
    for key, tensor in state.items():
        if key not in expected:
            raise ReferenceCheckpointError(f"{source}: {key} is not part of a TRM with this config")
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ReferenceCheckpointError(f"{source}: {key} has shape {tuple(tensor.shape)}, "
                                           f"the config expects {tuple(expected[key].shape)}")
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ReferenceCheckpointError(f"{source}: missing {', '.join(missing)}")
