"""TRM checkpoints on disk: the exported model (what `trm eval` and the hybrid load) and its plan.

An export is a directory with `config.json` + `model.safetensors` (Hugging Face layout) and
`puzzles.json`, the augmentation plan naming the task and augmentation of every puzzle-embedding
row. Directories are written under a temporary name and renamed, so a reader never sees half of one.
Anything wrong with a checkpoint is a `CheckpointError` with one line naming the file and the problem.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch

from hybrid_pipeline.arc.datasets import BLANK_PUZZLE, AugmentationPlan
from hybrid_pipeline.arc.files import atomic_write_json, creation_mode
from hybrid_pipeline.trm.config import CONFIG_NAME, TRMConfig
from hybrid_pipeline.trm.model import TRM, WEIGHTS_NAME

PUZZLES_NAME = "puzzles.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: missing, corrupt, or from a different config."""


def save_export(model: TRM, plan: AugmentationPlan, directory: str | Path,
                weights: dict[str, torch.Tensor] | None = None) -> None:
    """Write `model` (with `weights` overriding its parameters, e.g. the EMA average) and the plan."""
    from safetensors.torch import save_file

    directory = Path(directory)
    model.config.save_pretrained(directory)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    state.update({k: v.detach().contiguous() for k, v in (weights or {}).items()})
    save_file(state, str(directory / WEIGHTS_NAME))
    atomic_write_json(directory / PUZZLES_NAME, plan.names)


def load_trm(directory: str | Path, *, device: str | torch.device | None = None) -> tuple[TRM, AugmentationPlan]:
    """The model and its plan from an export directory; a missing plan means every task is unseen."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    try:
        config = TRMConfig.from_pretrained(directory)
    except (OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"{directory / CONFIG_NAME}: {e}") from None
    weights = directory / WEIGHTS_NAME
    try:
        state = load_file(str(weights))
    except FileNotFoundError:
        raise CheckpointError(f"{weights}: missing (a checkpoint holds {CONFIG_NAME} and {WEIGHTS_NAME})") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: corrupt or truncated safetensors file ({e})") from None
    model = TRM(config)
    expected = model.state_dict()
    mismatched = [f"{k} {tuple(v.shape)} in the file, {tuple(expected[k].shape)} for config.json"
                  for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if mismatched or missing or unexpected:
        detail = "; ".join(mismatched[:3] + [f"missing {k}" for k in missing[:3]]
                           + [f"unexpected {k}" for k in unexpected[:3]])
        raise CheckpointError(f"{weights}: weights do not match {CONFIG_NAME}: {detail}")
    model.load_state_dict(state)
    return model.to(device), load_plan(directory)


def load_plan(directory: str | Path) -> AugmentationPlan:
    path = Path(directory) / PUZZLES_NAME
    if not path.is_file():
        return AugmentationPlan([BLANK_PUZZLE])
    try:
        names = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise CheckpointError(f"{path}: expected a JSON list of puzzle names")
    return AugmentationPlan(names)


def write_dir_atomically(target: str | Path, write: Callable[[Path], None]) -> None:
    """Run `write(scratch_dir)`, then rename the scratch directory to `target` (replacing it)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(scratch)
        os.chmod(scratch, creation_mode(directory=True))  # mkdtemp made it 0700
        if target.exists():
            shutil.rmtree(target)
        os.replace(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
