"""experiments/unseen_hybrid.py: scoring outside the method, the hybrid trained jointly on some
tasks answering others without reading their test outputs, and the trained LM with test-time
training."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from conftest import load_experiment

unseen = load_experiment("unseen_hybrid")
tasks_module = load_experiment("unseen_tasks")


def same_predictions(a: dict, b: dict) -> bool:
    """{source: {task id: grid or None}} equal, grid for grid."""
    return a.keys() == b.keys() and all(
        a[s].keys() == b[s].keys() and all((a[s][k] is None and b[s][k] is None)
                                           or (a[s][k] is not None and b[s][k] is not None
                                               and np.array_equal(a[s][k], b[s][k])) for k in a[s])
        for s in a)


def test_score_compares_the_first_test_output_and_counts_no_prediction_as_wrong():
    tasks = tasks_module.family_tasks("dihedral", "heldout", 3)
    predictions = {tasks[0].id: tasks[0].test[0].output.copy(), tasks[1].id: None,
                   tasks[2].id: tasks[2].test[0].input}  # the family never leaves a grid unchanged
    result = tasks_module.score(tasks_module.MethodResult("m", {}, 0.0, 0.0, predictions=predictions), tasks)
    assert result.correct == {tasks[0].id: True, tasks[1].id: False, tasks[2].id: False}
    table = unseen.format_table([result], "title")
    assert table.splitlines()[0] == "title" and "1/3 = 33.3% ± 27.2" in table


def test_every_family_fits_the_canvas_with_an_eos_edge_and_the_answer_budget():
    for family in tasks_module.FAMILIES:
        for task in tasks_module.family_tasks(family, "train", 4):
            for ex in (*task.train, *task.test):
                assert max(*ex.input.shape, *ex.output.shape) < unseen.CANVAS
                assert ex.output.shape[0] * (ex.output.shape[1] + 1) + 1 <= unseen.ANSWER_TOKENS


def test_unknown_family_exits_2_with_one_line(capsys):
    assert unseen.main(["--families", "dihedral,spirals"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown family spirals" in err[0]


def test_the_table_scores_every_held_out_task(capsys):
    assert unseen.main(["--quick", "--families", "dihedral"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("hybrid")]
    assert len(rows) == 2 and all(re.search(r" [0-4]/4 = ", row) for row in rows)  # the 4 quick held-out tasks


@pytest.mark.slow
def test_hybrid_trains_on_some_tasks_and_answers_held_out_ones_without_their_outputs(tmp_path):
    budget = tasks_module.MethodBudget(train_steps=10, test_steps=0, seed=0, quick=True, work_dir=str(tmp_path))
    train = tasks_module.family_tasks("dihedral", "train", 8)
    held_out = tasks_module.family_tasks("dihedral", "heldout", 4)
    model, train_cpu, last = unseen.fit_hybrid(train, budget, tmp_path)
    assert train_cpu > 0 and last["steps"] == 10
    assert model.trm.puzzle_emb is None  # task identity can only come through the LM's reading
    blind, cpu = unseen.predict_hybrid(model, [t.without_solutions() for t in held_out], 0)
    seen, _ = unseen.predict_hybrid(model, held_out, 0)
    assert cpu > 0 and set(blind) == {"trm", "lm"} and blind["trm"].keys() == {t.id for t in held_out}
    assert same_predictions(blind, seen)
    before = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    adapted, cpu = unseen.predict_hybrid_ttt(model, [t.without_solutions() for t in held_out], 2)
    assert adapted.keys() == blind.keys() and cpu > 0
    after = model.trainable_state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # every task starts from the joint weights
    assert same_predictions(unseen.predict_hybrid_ttt(model, held_out, 0)[0], blind)  # 0 steps: no change
    result = unseen.hybrid_method(train, [t.without_solutions() for t in held_out], budget)
    assert tasks_module.score(result, held_out).correct.keys() == {t.id for t in held_out}


@pytest.mark.slow
def test_a_language_model_trained_on_the_family_saves_and_answers_held_out_tasks_blind(tmp_path):
    from hybrid_pipeline.backbones import BackboneConfig, load_backbone

    train = tasks_module.family_tasks("colour_perm", "train", 4)
    directory, cpu, losses = unseen.pretrain_lm(train, 6, tmp_path / "lm", batch_size=2)
    assert len(losses) == 6 and cpu > 0
    loaded = load_backbone(BackboneConfig(name_or_path=str(directory)))
    assert not loaded.random_weights  # a checkpoint of its own, loaded like any local model
    random = load_backbone(BackboneConfig())
    assert not all(torch.equal(a, b) for a, b in zip(loaded.model.parameters(), random.model.parameters()))
    held_out = tasks_module.family_tasks("colour_perm", "heldout", 2)
    blind, seconds = unseen.predict_lm(str(directory), [t.without_solutions() for t in held_out], ttt_steps=2)
    seen, _ = unseen.predict_lm(str(directory), held_out, ttt_steps=2)
    assert seconds > 0 and blind.keys() == seen.keys() == {t.id for t in held_out}
    assert all((blind[k] is None and seen[k] is None) or np.array_equal(blind[k], seen[k]) for k in blind)
