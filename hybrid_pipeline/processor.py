"""`HybridProcessor`: text and grids in, batch tensors out; answer tokens and TRM tokens back to grids.

The hybrid's counterpart of a Hugging Face processor: it owns the tokenizer and the TRM canvas, and
nothing else, so data can be prepared (and answers read) without loading the language model.

    processor = HybridProcessor.from_pretrained("runs/joint/final")   # or HybridProcessor(tokenizer, canvas=30)
    batch = processor(prompts, test_inputs, test_outputs=outputs)      # dict of tensors, see __call__
    texts, grids, errors = processor.decode_answers(answer_tokens)     # [B,N] -> B texts and grids

Batch keys (B rows, T prompt tokens, A answer tokens, L = canvas**2 cells):
    prompt_ids [B,T] long, prompt_mask [B,T] (left-padded, so generation continues from column T),
    answer_ids [B,A] long, answer_mask [B,A] (right-padded; EOS included), only with answers or outputs,
    inputs [B,L] long (TRM tokens of the test input), labels [B,L] long (of its answer; PAD ignored),
    puzzle_identifiers [B] long (default 0: the blank puzzle).

`save_pretrained` writes processor_config.json and the tokenizer's files into a directory (beside a
model's files; nothing else there is touched).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybrid_pipeline.arc.files import atomic_write_json
from hybrid_pipeline.arc.grids import GridDecodeError, decode_grid, encode_grid
from hybrid_pipeline.arc.text import AnswerParseError, grid_to_text, parse_grid
from hybrid_pipeline.backbones.base import answer_token_ids, pad_token_rows, until_eos
from hybrid_pipeline.trm.checkpoint import CheckpointError

PROCESSOR_NAME = "processor_config.json"


class HybridProcessor:
    """Encodes prompts and grids into `HybridModel` batches and decodes its outputs into grids."""

    def __init__(self, tokenizer: Any, *, canvas: int = 30):
        if not 1 <= canvas <= 30:
            raise ValueError(f"canvas must be 1..30, got {canvas}")
        self.tokenizer = tokenizer
        self.canvas = canvas

    def __call__(self, prompts: Sequence[str], test_inputs: Sequence[np.ndarray], *,
                 test_outputs: Sequence[np.ndarray] | None = None, answers: Sequence[str] | None = None,
                 puzzle_ids: Sequence[int] | None = None,
                 device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """A batch from prompt texts and test grids (keys in the module docstring).

        Answers default to the test outputs as text (`grid_to_text`); the answer tokens end with EOS
        so the LM learns to stop. Without outputs or answers the batch is for prediction only.
        """
        tokenizer = self.tokenizer
        B = len(prompts)
        if len(test_inputs) != B:
            raise ValueError(f"{B} prompts but {len(test_inputs)} test inputs")
        if answers is None and test_outputs is not None:
            answers = [grid_to_text(g) for g in test_outputs]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

        batch: dict[str, torch.Tensor] = {}
        batch["prompt_ids"], batch["prompt_mask"] = pad_token_rows([tokenizer(p)["input_ids"] for p in prompts], pad,
                                                                   left=True)
        if answers is not None:
            batch["answer_ids"], batch["answer_mask"] = pad_token_rows(
                [answer_token_ids(tokenizer, a) for a in answers], pad, left=False)
        batch["inputs"] = self._grid_tokens(test_inputs)
        if test_outputs is not None:
            batch["labels"] = self._grid_tokens(test_outputs)
        batch["puzzle_identifiers"] = torch.tensor(list(puzzle_ids) if puzzle_ids is not None else [0] * B,
                                                   dtype=torch.long)
        return {k: v.to(device) for k, v in batch.items()} if device is not None else batch

    def _grid_tokens(self, grids: Sequence[np.ndarray]) -> torch.Tensor:
        """Grids at the top left of the canvas, as TRM tokens [B,L]."""
        return torch.from_numpy(np.stack([encode_grid(np.asarray(g, dtype=np.uint8), canvas=self.canvas)
                                          for g in grids]).astype(np.int64))

    def decode_grids(self, trm_tokens: torch.Tensor) -> tuple[list[np.ndarray | None], list[str | None]]:
        """TRM tokens [B,L] -> (grids, errors): each grid decoded strictly by the data layer, or None
        with the reason."""
        grids: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for row in trm_tokens.cpu().numpy():
            try:
                grids.append(decode_grid(row).astype(np.uint8))
                errors.append(None)
            except GridDecodeError as e:
                grids.append(None)
                errors.append(str(e))
        return grids, errors

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """Answer tokens [B,N] -> texts, each cut at its first EOS."""
        eos = self.tokenizer.eos_token_id
        return [self.tokenizer.decode(until_eos(row, eos), skip_special_tokens=True) for row in tokens]

    def decode_answers(self, tokens: torch.Tensor) -> tuple[list[str], list[np.ndarray | None], list[str | None]]:
        """Answer tokens [B,N] -> (texts, grids, errors): a grid is None when its text holds none, and
        its error says why."""
        texts = self.decode(tokens)
        grids: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for text in texts:
            try:
                grids.append(parse_grid(text))
                errors.append(None)
            except AnswerParseError as e:
                grids.append(None)
                errors.append(str(e))
        return texts, grids, errors

    # ---- persistence --------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> None:
        """processor_config.json and the tokenizer's files into `directory` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(directory))
        atomic_write_json(directory / PROCESSOR_NAME, {"processor_class": type(self).__name__,
                                                       "canvas": self.canvas}, indent=2)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, tokenizer: Any | None = None) -> HybridProcessor:
        """Load what `save_pretrained` wrote; `tokenizer` (a loaded backbone's) replaces the saved one."""
        path = Path(directory) / PROCESSOR_NAME
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{path}: missing (a hybrid processor holds {PROCESSOR_NAME} and tokenizer "
                                  "files)") from None
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        canvas = values.get("canvas") if isinstance(values, dict) else None
        if isinstance(canvas, bool) or not isinstance(canvas, int) or not 1 <= canvas <= 30:
            raise CheckpointError(f"{path}: 'canvas' should be an integer 1..30, got {canvas!r}")
        if tokenizer is None:
            from transformers import AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(str(path.parent), local_files_only=True)
            except (OSError, ValueError) as e:
                raise CheckpointError(f"{path.parent}: cannot load the processor's tokenizer "
                                      f"({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from None
        return cls(tokenizer, canvas=canvas)


__all__ = ["HybridProcessor", "PROCESSOR_NAME"]
