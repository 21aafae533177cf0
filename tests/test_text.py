import numpy as np
import pytest

from hybrid_pipeline.arc.tasks import parse_task
from hybrid_pipeline.arc.text import AnswerParseError, count_grid_tokens, grid_to_text, parse_grid, task_to_prompt


def test_grid_to_text_is_one_char_per_cell_and_a_newline_per_row():
    assert grid_to_text(np.array([[0, 1, 2], [9, 8, 7]], np.uint8)) == "012\n987\n"


def test_prompt_carries_every_demonstration_and_never_the_test_output():
    task, _ = parse_task({"train": [{"input": [[1]], "output": [[2]]}, {"input": [[3]], "output": [[4]]}],
                          "test": [{"input": [[5]], "output": [[6]]}, {"input": [[7]], "output": [[8]]}]},
                         task_id="t")
    assert task_to_prompt(task, 1) == ("Example 1\nInput:\n1\nOutput:\n2\n\n"
                                       "Example 2\nInput:\n3\nOutput:\n4\n\n"
                                       "Test\nInput:\n7\nOutput:\n")
    assert "8" not in task_to_prompt(task, 1) and "6" not in task_to_prompt(task, 1)


def test_parse_round_trips_every_grid_of_a_split(arc1_eval):
    for task in arc1_eval:
        for ex in task.train:
            np.testing.assert_array_equal(parse_grid(grid_to_text(ex.output)), ex.output)


@pytest.mark.parametrize("text", [
    "Sure! Here is the answer:\n```\n12\n34\n```\nHope that helps.",
    "  12  \n  34\n\nOutput:\n99\n",
    "12\r\n34\r\n",
])
def test_parse_tolerates_surrounding_text(text):
    np.testing.assert_array_equal(parse_grid(text), [[1, 2], [3, 4]])


@pytest.mark.parametrize("text, reason", [
    ("no digits here", "no grid found"),
    ("123\n45\n", "row 1 has 2 cells, expected 3 (ragged rows)"),
    ("123\n4x6\n", "row 1 col 1: 'x' is not a digit 0-9"),
    ("1" * 31 + "\n", "grid is 1x31, expected at most 30x30"),
])
def test_parse_rejects_malformed_answers_with_reason(text, reason):
    with pytest.raises(AnswerParseError) as err:
        parse_grid(text)
    assert reason in str(err.value)


class CharTokenizer:
    """Stand-in with the HF call signature: one token per character."""

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [ord(c) for c in text]}


def test_count_grid_tokens_counts_cells_and_newlines():
    assert count_grid_tokens(np.zeros((3, 4), np.uint8), CharTokenizer()) == 3 * 4 + 3
