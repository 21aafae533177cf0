"""Tasks as text for language models, and answers read back.

A grid is one character per cell (the digit of its colour) and one line per row, which keeps each
cell a single token for tokenizers that split digits. A task prompt lists every demonstration pair,
then the test input, and ends where the answer starts:

    Example 1
    Input:
    012
    340
    Output:
    ...

    Test
    Input:
    ...
    Output:

`parse_grid` reads an answer from free text: it takes the first block of lines that start with a
digit, so text before and after the grid is ignored, and rejects ragged rows or non-digit cells
inside the block with the place and the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hybrid_pipeline.arc.tasks import MAX_SIDE, Task
from hybrid_pipeline.arc.wording import plural

INPUT_MARKER = "Input:"
OUTPUT_MARKER = "Output:"
TEST_MARKER = "Test"
DIGITS = "0123456789"
GRID_ALPHABET = DIGITS + "\n"


class AnswerParseError(ValueError):
    """Text that does not hold a well-formed grid; the message says where and why."""


def grid_to_text(grid: np.ndarray) -> str:
    """Grid [h, w] -> ``"012\\n340\\n"`` (every row, the last included, ends with a newline)."""
    digits = (np.asarray(grid, dtype=np.uint8) + ord("0")).astype(np.uint8)
    return "".join(row.tobytes().decode("ascii") + "\n" for row in digits)


def task_to_prompt(task: Task, test_index: int = 0) -> str:
    """Prompt with every demonstration pair and test input `test_index`, ending at ``Output:\\n``.

    Never reads the test output, so it is safe for solvers.
    """
    parts = []
    for i, ex in enumerate(task.train, 1):
        parts.append(f"Example {i}\n{INPUT_MARKER}\n{grid_to_text(ex.input)}"
                     f"{OUTPUT_MARKER}\n{grid_to_text(ex.output)}\n")
    parts.append(f"{TEST_MARKER}\n{INPUT_MARKER}\n{grid_to_text(task.test[test_index].input)}{OUTPUT_MARKER}\n")
    return "".join(parts)


def parse_grid(text: str) -> np.ndarray:
    """The first grid in `text` as uint8 [h, w]; raises AnswerParseError naming the problem.

    Rows are consecutive lines that start with a digit (surrounding whitespace and a Markdown code
    fence are ignored); the block ends at the first line that does not start with a digit.
    """
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    start = next((i for i, line in enumerate(lines) if _starts_with_digit(line)), None)
    if start is None:
        raise AnswerParseError("no grid found: no line starts with a digit 0-9")
    rows = []
    for line in lines[start:]:
        if not _starts_with_digit(line):
            break
        rows.append(line)
    width = len(rows[0])
    for r, row in enumerate(rows):
        bad = next((c for c, ch in enumerate(row) if ch not in DIGITS), None)
        if bad is not None:
            raise AnswerParseError(f"row {r} col {bad}: {row[bad]!r} is not a digit 0-9")
        if len(row) != width:
            raise AnswerParseError(f"row {r} has {plural(len(row), 'cell')}, expected {width} (ragged rows)")
    if len(rows) > MAX_SIDE or width > MAX_SIDE:
        raise AnswerParseError(f"grid is {len(rows)}x{width}, expected at most {MAX_SIDE}x{MAX_SIDE}")
    return np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8).reshape(len(rows), width) - ord("0")


def _starts_with_digit(line: str) -> bool:
    return bool(line) and line[0] in DIGITS


def count_grid_tokens(grid: np.ndarray, tokenizer: Any) -> int:
    """Tokens a Hugging Face tokenizer spends on the grid's text (no special tokens)."""
    return len(tokenizer(grid_to_text(grid), add_special_tokens=False)["input_ids"])
