"""experiments/unseen_hybrid.py: the dihedral task family, scoring outside the method, and the
hybrid trained jointly on some tasks predicting others without reading their test outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import load_experiment
from hybrid_pipeline.arc.grids import dihedral

unseen = load_experiment("unseen_hybrid.py")


def test_each_task_applies_one_dihedral_transform_that_only_its_demonstrations_reveal():
    tasks = unseen.dihedral_family(16, seed=3)
    assert len({t.id for t in tasks}) == 16
    for i, task in enumerate(tasks):
        assert len(task.train) == 3 and len(task.test) == 1
        for ex in (*task.train, *task.test):
            assert 3 <= min(ex.input.shape) and max(ex.input.shape) <= 5
            assert np.array_equal(ex.output, dihedral(ex.input, i % 8))
    again = unseen.dihedral_family(16, seed=3)
    assert all(np.array_equal(a.test[0].input, b.test[0].input) for a, b in zip(tasks, again))
    other = unseen.dihedral_family(16, seed=4)
    assert not all(np.array_equal(a.test[0].input, b.test[0].input) for a, b in zip(tasks, other))


def test_score_compares_the_first_test_output_and_counts_no_prediction_as_wrong():
    tasks = unseen.dihedral_family(8, seed=0)
    result = unseen.copy_input_method([], [t.without_solutions() for t in tasks], unseen.MethodBudget())
    result.predictions[tasks[1].id] = None
    unseen.score(result, tasks)
    # task 0 applies the identity, so copying its input is right; task 1 has no prediction
    assert result.correct == {t.id: i == 0 for i, t in enumerate(tasks)}
    table = unseen.format_table([result], "title")
    assert "1/8 = 12.5%" in table and table.splitlines()[0] == "title"


@pytest.mark.slow
def test_hybrid_trains_on_some_tasks_and_predicts_held_out_ones_without_their_outputs(tmp_path):
    budget = unseen.MethodBudget(cpu_seconds=120, seed=0, quick=True)
    train = unseen.dihedral_family(8, seed=0, prefix="train")
    held_out = unseen.dihedral_family(4, seed=1, prefix="held")
    model, train_cpu, last = unseen.fit_hybrid(train, budget, tmp_path)
    assert train_cpu > 0 and last["steps"] == 10
    assert model.trm.puzzle_emb is None  # task identity can only come through the LM's reading
    blind, cpu = unseen.predict_hybrid(model, [t.without_solutions() for t in held_out], 0)
    seen, _ = unseen.predict_hybrid(model, held_out, 0)
    assert cpu > 0 and set(blind) == {"trm", "lm"}
    for source in ("trm", "lm"):
        assert blind[source].keys() == {t.id for t in held_out}
        for task_id, grid in blind[source].items():
            other = seen[source][task_id]
            assert (grid is None and other is None) or np.array_equal(grid, other)
    result = unseen.score(unseen.MethodResult("hybrid", {}, train_cpu, cpu, predictions=blind["trm"]), held_out)
    assert set(result.correct) == {t.id for t in held_out}


@pytest.mark.slow
def test_a_language_model_trained_on_the_family_saves_and_answers_held_out_tasks_blind(tmp_path):
    from hybrid_pipeline.backbones import BackboneConfig, load_backbone

    train = unseen.dihedral_family(4, seed=0, prefix="train")
    directory, cpu, losses = unseen.pretrain_lm(train, 6, tmp_path / "lm", batch_size=2)
    assert len(losses) == 6 and cpu > 0
    loaded = load_backbone(BackboneConfig(name_or_path=str(directory)))
    assert not loaded.random_weights  # a checkpoint of its own, loaded like any local model
    random = load_backbone(BackboneConfig())
    assert not all(torch.equal(a, b) for a, b in zip(loaded.model.parameters(), random.model.parameters()))
    held_out = unseen.dihedral_family(2, seed=1, prefix="held")
    blind, seconds = unseen.predict_lm(str(directory), [t.without_solutions() for t in held_out], ttt_steps=2)
    seen, _ = unseen.predict_lm(str(directory), held_out, ttt_steps=2)
    assert seconds > 0 and blind.keys() == seen.keys() == {t.id for t in held_out}
    assert all((blind[k] is None and seen[k] is None) or np.array_equal(blind[k], seen[k]) for k in blind)
