"""TRM losses: stablemax values by hand, per-sequence averaging, halting BCE and metrics, weighting."""

import math

import pytest
import torch

from hybrid_pipeline.trm.losses import (SupervisionWeighting, act_loss, log_stablemax, loss_by_step,
                                        softmax_cross_entropy, stablemax_cross_entropy, summarize_metrics)

UP, MID = [-1.0, 2.0, 0.0], [-1.0, 0.0, 2.0]  # argmax 1 and 2; stablemax s = (0.5, 3, 1) / 4.5


def example():
    """Two sequences of 3 cells, vocab 3, label 0 = PAD. Sequence 0 is exactly right, sequence 1 is not."""
    logits = torch.tensor([[UP, MID, UP], [UP, UP, MID]], requires_grad=True)
    labels = torch.tensor([[1, 2, 0], [2, 1, 1]])
    outputs = {"logits": logits, "q_halt_logits": torch.tensor([0.3, 0.7], requires_grad=True),
               "steps": torch.tensor([1, 2], dtype=torch.int32), "halted": torch.tensor([True, True])}
    return outputs, labels


def test_log_stablemax_by_hand():
    out = log_stablemax(torch.tensor([-1.0, 0.0, 2.0]))
    assert out.dtype == torch.float64
    assert out.tolist() == pytest.approx([math.log(0.5 / 4.5), math.log(1 / 4.5), math.log(3 / 4.5)], abs=1e-12)


def test_stablemax_cross_entropy_ignores_pad_by_default_and_takes_other_ids():
    logits = torch.tensor([[UP, UP, MID]])
    labels = torch.tensor([[1, 0, 1]])
    loss = stablemax_cross_entropy(logits, labels)
    assert loss[0].tolist() == pytest.approx([math.log(1.5), 0.0, math.log(4.5)], abs=1e-12)
    loss = stablemax_cross_entropy(logits, labels, ignore_index=-100)
    assert loss[0, 1].item() == pytest.approx(math.log(9.0), abs=1e-12)


def test_softmax_cross_entropy_matches_formula():
    loss = softmax_cross_entropy(torch.tensor([[UP, UP]]), torch.tensor([[1, 0]]))
    expected = -math.log(math.exp(2) / (math.exp(-1) + math.exp(2) + 1))
    assert loss[0].tolist() == pytest.approx([expected, 0.0], abs=1e-6)


def test_act_loss_by_hand_and_gradients():
    outputs, labels = example()
    result = act_loss(outputs, labels)
    seq0 = math.log(1.5)
    seq1 = (2 * math.log(4.5) + math.log(1.5)) / 3
    halt = math.log1p(math.exp(-0.3)) + math.log1p(math.exp(0.7))  # targets 1 (right) and 0 (wrong)
    assert result.seq_loss.tolist() == pytest.approx([seq0, seq1], abs=1e-6)
    assert result.loss.item() == pytest.approx(seq0 + seq1 + 0.5 * halt, abs=1e-6)
    result.loss.backward()
    assert outputs["logits"].grad[0, 2].abs().sum() == 0  # PAD cell: no gradient
    assert outputs["logits"].grad[1].abs().sum() > 0 and outputs["q_halt_logits"].grad.abs().sum() > 0


def test_metrics_report_halting_precision_and_recall():
    outputs, labels = example()
    rates = summarize_metrics(act_loss(outputs, labels).metrics)
    assert rates["count"] == 2
    assert rates["cell_accuracy"] == pytest.approx((1 + 1 / 3) / 2)
    assert rates["exact_accuracy"] == 0.5
    # both q_halt > 0 ("I am right"), only sequence 0 is: precision 1/2, recall 1/1
    assert rates["halt_precision"] == 0.5 and rates["halt_recall"] == 1.0
    assert rates["mean_steps"] == 1.5

    outputs["halted"] = torch.tensor([False, True])  # metrics cover final answers only
    rates = summarize_metrics(act_loss(outputs, labels).metrics)
    assert rates["count"] == 1 and rates["exact_accuracy"] == 0.0 and rates["halt_recall"] == 0.0


def test_supervision_weighting_presets():
    assert SupervisionWeighting.preset("uniform").step_weights(4).tolist() == [1.0] * 4
    w = SupervisionWeighting.preset("moderate").step_weights(3)
    assert w.tolist() == pytest.approx([3 / 13, 9 / 13, 27 / 13])
    assert SupervisionWeighting.preset("extreme") == SupervisionWeighting(10.0, 2.0)
    with pytest.raises(ValueError, match="gentle"):
        SupervisionWeighting.preset("gentle")


def test_weighted_loss_with_improvement_reward_by_hand():
    outputs, labels = example()
    plain = act_loss(outputs, labels)
    weighted = act_loss(outputs, labels, weighting=SupervisionWeighting.preset("moderate"), max_steps=3,
                        prev_seq_loss=torch.tensor([10.0, 2.0]))
    l0, l1 = plain.seq_loss.tolist()
    halt = plain.metrics["halt_loss"].item()
    # sequence 0 is on step 1 (no previous loss counts), sequence 1 on step 2
    expected = l0 * 3 / 13 + l1 * 9 / 13 - 0.5 * (2.0 - l1) / 2.0 + 0.5 * halt
    assert weighted.loss.item() == pytest.approx(expected, abs=1e-6)
    uniform = act_loss(outputs, labels, weighting=SupervisionWeighting(), max_steps=3, prev_seq_loss=torch.ones(2))
    assert uniform.loss.item() == pytest.approx(plain.loss.item(), abs=1e-6)
    with pytest.raises(ValueError, match="max_steps"):
        act_loss(outputs, labels, weighting=SupervisionWeighting())


def test_loss_by_step():
    total, count = loss_by_step(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1, 3, 3]), max_steps=3)
    assert total.tolist() == [1.0, 0.0, 6.0] and count.tolist() == [1, 0, 2]
