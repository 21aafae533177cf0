"""Backbones as answer models: where causal generation stops, and a prompt cache that changes no answer."""

from __future__ import annotations

import pytest
import torch

from hybrid_pipeline.arc.tasks import load_tasks
from hybrid_pipeline.arc.text import task_to_prompt
from hybrid_pipeline.backbones import BackboneConfig, BackboneLoadError, load_backbone
from hybrid_pipeline.backbones.answer import BackboneAnswerModel, GridEndStop

SMALL_TASK = "66e6c45b"  # the shortest prompt of ARC-AGI-1 evaluation (172 characters)


def test_grid_end_stop_stops_after_the_grid_or_a_row_too_long():
    newline, digits = 10, list(range(10))
    stop = GridEndStop(newline, digits)

    def ids(text):
        return torch.tensor([[newline if ch == "\n" else int(ch) for ch in text]])

    assert stop(ids("12\n34\n\n")).tolist() == [True]
    assert stop(ids("12\n34\n")).tolist() == [False]
    assert stop(ids("\n\n")).tolist() == [False] and stop(ids("\n\n\n")).tolist() == [False]  # nothing yet
    assert stop(ids("1" * 30)).tolist() == [False] and stop(ids("1" * 31)).tolist() == [True]
    assert stop(ids("\n" + "1" * 30 + "\n" + "2" * 5)).tolist() == [False]


@pytest.fixture(scope="module")
def tiny_causal():
    return load_backbone(BackboneConfig())


def test_prompt_cache_reuse_gives_the_same_greedy_and_sampled_answers(tiny_causal):
    (task,) = load_tasks("arc-agi-1:evaluation", ids=[SMALL_TASK]).raise_if_problems().tasks
    prompt = task_to_prompt(task)
    cached = BackboneAnswerModel(tiny_causal, reuse_prompt_cache=True)
    fresh = BackboneAnswerModel(tiny_causal, reuse_prompt_cache=False)
    kwargs = dict(temperature=1.0, max_new_tokens=40, seed=3)
    a = cached.generate_answers(prompt, 3, **kwargs)
    assert a == fresh.generate_answers(prompt, 3, **kwargs)
    assert cached.tokens_generated == fresh.tokens_generated > 0
    assert a == cached.generate_answers(prompt, 3, **kwargs)  # the cache is not consumed by its answers
    assert a != cached.generate_answers(prompt, 3, **dict(kwargs, seed=4))  # the seed drives sampling
    assert set("".join(a)) <= set("0123456789\n")  # constrained to the grid alphabet


def test_a_tokenizer_without_one_token_per_digit_is_refused_as_a_backbone_error_unless_unconstrained():
    class OneTokenForEverything:
        eos_token_id = None

        def encode(self, text, add_special_tokens=False):
            return [7]

        def decode(self, ids):
            return "?"

    class Backbone:
        tokenizer, random_weights = OneTokenForEverything(), True
        config = BackboneConfig(name_or_path="words-only")

    with pytest.raises(BackboneLoadError, match="'words-only'.*no single token for '0'.*constrain_to_grid off"):
        BackboneAnswerModel(Backbone())
    assert not BackboneAnswerModel(Backbone(), constrain_to_grid=False).constrain_to_grid
