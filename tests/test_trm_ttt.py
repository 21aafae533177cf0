"""Test-time training (hybrid_pipeline/trm/ttt.py) and `trm eval` / `plan` with --ttt-steps.

What users rely on: a task the TRM never trained on gets rows of its own, started at the trained
rows' mean and trained on its demonstrations only (a task stripped of its test outputs gets the
same predictions); nothing of the loaded model or the checkpoint on disk changes (the network only
in a copy, and only when asked); a task with trained rows is predicted as before; --ttt-steps 0 is
the evaluation without it; a resume with another --ttt-steps is refused.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from hybrid_pipeline.arc.datasets import AugmentationPlan
from hybrid_pipeline.arc.grids import IDENTITY
from hybrid_pipeline.arc.tasks import Example, Task, load_tasks
from hybrid_pipeline.cli import main
from hybrid_pipeline.trm.checkpoint import save_export
from hybrid_pipeline.trm.config import TRMConfig
from hybrid_pipeline.trm.evaluate import vote_predictions
from hybrid_pipeline.trm.model import TRM
from hybrid_pipeline.arc.datasets import TRMDataConfig, trm_rows
from hybrid_pipeline.trm import ttt
from hybrid_pipeline.trm.losses import LOSS_FUNCTIONS, PAD_ID
from hybrid_pipeline.trm.ttt import TaskRows, TTTConfig, adapt, candidate_rows, mean_row, nearest_rows, vote_with_ttt

CANVAS = 8
TRAINED_IDS = ["0d3d703e", "25ff71a9"]  # bundled ARC-AGI-1 training tasks with small grids
UNSEEN_ID = "66e6c45b"  # an evaluation task no row was trained for


def flip_task(task_id: str, seed: int) -> Task:
    """Three demonstrations and a test pair of a left-right flip on random 3x4 grids."""
    rng = np.random.default_rng(seed)
    pairs = [rng.integers(0, 10, size=(3, 4)).astype(np.uint8) for _ in range(4)]
    examples = tuple(Example(g, np.fliplr(g).copy()) for g in pairs)
    return Task(task_id, examples[:3], examples[3:])


@pytest.fixture(scope="module")
def model_and_plan():
    """A small TRM with a plan of two tasks x 3 views and a table whose trained rows are random."""
    plan = AugmentationPlan.sample([flip_task("a", 0), flip_task("b", 1)], 3, seed=0)
    return random_trm(plan, seed=0, H_cycles=2, halt_max_steps=2), plan


def random_trm(plan: AugmentationPlan, *, seed: int, **config) -> TRM:
    """A hidden-32 TRM on the 8x8 canvas with random weights and random trained rows for `plan`."""
    torch.manual_seed(seed)
    values = dict(hidden_size=32, num_heads=2, L_layers=1, H_cycles=1, L_cycles=1, halt_max_steps=1,
                  puzzle_emb_len=1, forward_dtype="float32", seq_len=CANVAS ** 2,
                  num_puzzle_identifiers=plan.num_puzzles)
    model = TRM(TRMConfig(**{**values, **config}))
    with torch.no_grad():
        model.puzzle_emb.weight[1:] = torch.randn(plan.num_puzzles - 1, 32)
    return model.eval()


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_state(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_new_rows_start_at_the_mean_of_the_trained_rows_one_per_view(model_and_plan):
    model, plan = model_and_plan
    adapted = adapt(model, plan, flip_task("new", 5), TTTConfig(steps=0), canvas=CANVAS)
    rows = adapted.model.puzzle_emb.weight
    assert plan.views_per_task == 3 and rows.shape == (4, 32)
    assert torch.equal(rows[0], model.puzzle_emb.weight[0])  # the blank row
    expected = model.puzzle_emb.weight[1:].mean(0)
    assert torch.allclose(mean_row(model, plan), expected)
    assert all(torch.equal(r, mean_row(model, plan)) for r in rows[1:])
    assert [n.split("/")[0] for n in adapted.plan.names[1:]] == ["new"] * 3
    assert adapted.plan.names[1] == f"new/{IDENTITY.name}"  # the identity view first


def test_ttt_trains_only_the_new_rows_and_leaves_the_model_as_it_was(model_and_plan):
    model, plan = model_and_plan
    before = _state(model)
    adapted = adapt(model, plan, flip_task("new", 5), TTTConfig(steps=15, lr=3e-2), canvas=CANVAS)
    assert _same_state(before, _state(model))  # network and trained table untouched
    assert model.puzzle_emb.weight.shape[0] == plan.num_puzzles
    network = {k: v for k, v in adapted.model.state_dict().items() if not k.startswith("puzzle_emb.")}
    assert _same_state(network, {k: before[k] for k in network})  # the copy's network did not train
    rows = adapted.model.puzzle_emb.weight
    assert not torch.equal(rows[1], mean_row(model, plan)) and torch.equal(rows[0], before["puzzle_emb.weight"][0])
    assert len(adapted.losses) == 15 and adapted.losses[-1] < adapted.losses[0]


def test_network_lr_fine_tunes_a_copy_of_the_network_only(model_and_plan):
    model, plan = model_and_plan
    before = _state(model)
    trainable = [p.requires_grad for p in model.parameters()]
    adapted = adapt(model, plan, flip_task("new", 5), TTTConfig(steps=3, network_lr=1e-3), canvas=CANVAS)
    assert _same_state(before, _state(model))
    assert [p.requires_grad for p in model.parameters()] == trainable
    assert not torch.equal(adapted.model.lm_head.weight, model.lm_head.weight)


def test_predictions_read_no_test_output_and_repeat_exactly(model_and_plan):
    model, plan = model_and_plan
    task = flip_task("new", 7)
    config = TTTConfig(steps=4, seed=3)
    boxes = [vote_with_ttt(model, [t], plan, config, canvas=CANVAS) for t in (task, task.without_solutions(), task)]
    ranked = [[(c.grid.tobytes(), c.votes, c.mean_confidence) for c in b.ranked("new", 0)] for b in boxes]
    assert ranked[0] and ranked[0] == ranked[1] == ranked[2]
    assert sum(c[1] for c in ranked[0]) <= 3  # one vote per view, mapped back to the original frame
    rows = [adapt(model, plan, t, config, canvas=CANVAS).model.puzzle_emb.weight for t in (task, task.without_solutions())]
    assert torch.equal(rows[0], rows[1])
    other_seed = adapt(model, plan, task, TTTConfig(steps=4, seed=4), canvas=CANVAS).model.puzzle_emb.weight
    assert not torch.equal(rows[0], other_seed)  # other views, other rows


def test_a_task_with_trained_rows_and_zero_steps_are_predicted_as_without_ttt(model_and_plan):
    model, plan = model_and_plan
    tasks = [flip_task("a", 0), flip_task("new", 5)]
    plain = vote_predictions(model, tasks, plan, canvas=CANVAS)
    adapted = vote_with_ttt(model, tasks, plan, TTTConfig(steps=3), canvas=CANVAS)
    unadapted = vote_with_ttt(model, tasks, plan, TTTConfig(steps=0), canvas=CANVAS)

    def ranks(box, task_id):
        return [(c.grid.tobytes(), c.votes) for c in box.ranked(task_id, 0)]

    assert ranks(adapted, "a") == ranks(plain, "a")
    assert ranks(unadapted, "a") == ranks(plain, "a") and ranks(unadapted, "new") == ranks(plain, "new")
    assert sum(v for _, v in ranks(plain, "new")) == 1  # blank row, identity view only
    assert sum(v for _, v in ranks(adapted, "new")) <= 3  # its own three views (an undecodable grid: no vote)


def _demonstration_rows(task: Task, plan: AugmentationPlan) -> dict[str, torch.Tensor]:
    cols = trm_rows([task], TRMDataConfig(splits=("train",), translate=False, canvas=CANVAS), plan)
    return {"inputs": torch.from_numpy(cols["inputs"].astype(np.int64)),
            "labels": torch.from_numpy(cols["labels"].astype(np.int64)),
            "puzzle_identifiers": torch.from_numpy(cols["puzzle_id"].astype(np.int64))}


def _loss_under(model: TRM, row: torch.Tensor, data: dict[str, torch.Tensor]) -> torch.Tensor:
    """(n,) each demonstration's mean cell loss with `row` as its puzzle row, one forward per call."""
    network = ttt._network_copy(model)
    network.puzzle_emb = TaskRows(torch.stack([row * 0, row]))
    batch = {"inputs": data["inputs"], "puzzle_identifiers": torch.ones_like(data["puzzle_identifiers"])}
    with torch.no_grad():
        carry = network.initial_carry(batch)
        for _ in range(network.config.halt_max_steps):
            carry, outputs = network(carry, batch)
    cells = LOSS_FUNCTIONS["stablemax"](outputs["logits"], data["labels"], ignore_index=PAD_ID)
    return cells.sum(-1) / (data["labels"] != PAD_ID).sum(-1)


def test_nearest_rows_pick_per_view_the_candidate_with_the_least_loss_on_that_views_demonstrations(model_and_plan,
                                                                                                  monkeypatch):
    model, plan = model_and_plan
    task = flip_task("new", 5)
    views = AugmentationPlan(["<blank>"] + [f"new/{a.name}" for a in ttt.task_augmentations("new", 3, 0)])
    data = _demonstration_rows(task, views)
    candidates = model.puzzle_emb.weight[1:].detach()  # 6 trained rows
    view_of = data["puzzle_identifiers"] - 1
    brute = torch.stack([torch.stack([_loss_under(model, row, data)[view_of == v].sum() for v in range(3)])
                         for row in candidates])  # (6 candidates, 3 views), one candidate at a time
    expected = candidates[brute.argmin(0)]
    monkeypatch.setattr(ttt, "SELECTION_BATCH", 7)  # candidates in chunks of 7 // 9 rows -> 1
    chunked = nearest_rows(ttt._network_copy(model), candidates, data, 3)
    monkeypatch.undo()
    assert torch.equal(chunked, expected) and torch.equal(nearest_rows(ttt._network_copy(model), candidates, data, 3),
                                                          expected)
    assert len({tuple(r.tolist()) for r in expected}) > 1  # the views do not all agree: the test tells them apart


def test_nearest_rows_find_the_trained_row_whose_predictions_the_demonstrations_are(model_and_plan):
    model, plan = model_and_plan
    data = _demonstration_rows(flip_task("new", 5), AugmentationPlan(["<blank>", f"new/{IDENTITY.name}"]))
    table = model.puzzle_emb.weight.detach()
    for source in range(1, plan.num_puzzles):
        with torch.no_grad():  # outputs made by the network itself under trained row `source`
            made = ttt._network_copy(model)
            made.puzzle_emb = TaskRows(table[[0, source]])
            batch = {"inputs": data["inputs"], "puzzle_identifiers": data["puzzle_identifiers"]}
            carry = made.initial_carry(batch)
            for _ in range(made.config.halt_max_steps):
                carry, outputs = made(carry, batch)
        labels = torch.where(data["labels"] == PAD_ID, PAD_ID, outputs["logits"].argmax(-1))
        chosen = nearest_rows(ttt._network_copy(model), table[1:], {**data, "labels": labels}, 1)
        assert torch.equal(chosen[0], table[source])


def test_nearest_init_starts_each_view_at_a_candidate_trained_row_drawn_per_task(model_and_plan):
    model, plan = model_and_plan
    trained = {tuple(r.tolist()) for r in model.puzzle_emb.weight[1:]}
    config = TTTConfig(steps=0, init="nearest", candidates=4)
    tried = candidate_rows(plan, "new", config)
    assert len(tried) == 4 == len(set(tried)) and tried == sorted(tried) and 0 not in tried
    assert tried == candidate_rows(plan, "new", config) and candidate_rows(plan, "new", TTTConfig(candidates=99)) == list(
        range(1, plan.num_puzzles))
    rows = adapt(model, plan, flip_task("new", 5), config, canvas=CANVAS).model.puzzle_emb.weight
    tried_rows = {tuple(model.puzzle_emb.weight[i].tolist()) for i in tried}
    assert all(tuple(r.tolist()) in tried_rows for r in rows[1:]) and tried_rows <= trained
    stripped = adapt(model, plan, flip_task("new", 5).without_solutions(), config, canvas=CANVAS)
    assert torch.equal(stripped.model.puzzle_emb.weight, rows)  # the test output is never read


def test_ttt_config_refuses_bad_values():
    for bad in ({"steps": -1}, {"lr": 0.0}, {"views": 0}, {"network_lr": -1.0}, {"loss_type": "mse"},
                {"init": "zeros"}, {"candidates": 0}):
        with pytest.raises(ValueError):
            TTTConfig(**bad)


# --------------------------------------------------------------------------------------------------
# the commands


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An export (random weights) whose plan holds two bundled training tasks, on an 8x8 canvas."""
    tasks = load_tasks("arc-agi-1:training", ids=TRAINED_IDS).raise_if_problems().tasks
    plan = AugmentationPlan.sample(tasks, 2, seed=0)
    directory = tmp_path_factory.mktemp("ckpt") / "final"
    save_export(random_trm(plan, seed=1), plan, directory)
    return directory


def _digests(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def _eval(checkpoint, data, out, *extra):
    return main(["trm", "eval", "--checkpoint", str(checkpoint), "--data", data, "--out", str(out), *extra])


def test_trm_eval_ttt_steps_adapts_unseen_tasks_and_leaves_the_checkpoint_alone(checkpoint, tmp_path, capsys):
    before = _digests(checkpoint)
    data = "arc-agi-1:evaluation"
    assert _eval(checkpoint, data, tmp_path / "ttt", "--tasks", UNSEEN_ID, "--ttt-steps", "3") == 0
    assert "adapted for 3 steps" in capsys.readouterr().out
    assert _digests(checkpoint) == before
    summary = json.loads((tmp_path / "ttt" / "summary.json").read_text())
    assert summary["ttt_steps"] == 3 and summary["unseen_in_training"] == 1
    record = json.loads((tmp_path / "ttt" / "results.jsonl").read_text())
    assert sum(record["test"][0]["top_votes"]) >= 1

    # a resume must repeat the setting
    assert _eval(checkpoint, data, tmp_path / "ttt", "--tasks", UNSEEN_ID, "--ttt-steps", "4", "--resume") == 2
    assert "ttt" in capsys.readouterr().err

    # 0 steps: the evaluation without the option, file for file
    assert _eval(checkpoint, data, tmp_path / "zero", "--tasks", UNSEEN_ID, "--ttt-steps", "0") == 0
    assert _eval(checkpoint, data, tmp_path / "plain", "--tasks", UNSEEN_ID) == 0
    for name in ("submission.json", "results.jsonl"):
        assert (tmp_path / "zero" / name).read_text() == (tmp_path / "plain" / name).read_text()


def test_trm_eval_ttt_init_nearest_adapts_without_steps_and_older_runs_resume_as_mean(checkpoint, tmp_path, capsys):
    data, out = "arc-agi-1:evaluation", tmp_path / "nearest"
    assert _eval(checkpoint, data, out, "--tasks", UNSEEN_ID, "--ttt-init", "nearest") == 0
    assert "never seen in training (rows from the nearest trained rows)" in capsys.readouterr().out
    recorded = json.loads((out / "run.json").read_text())["settings"]["ttt"]
    assert recorded["init"] == "nearest" and recorded["steps"] == 0 and recorded["candidates"] == 32
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ttt_init"] == "nearest" and summary["ttt_steps"] == 0 and summary["unseen_in_training"] == 1
    assert sum(json.loads((out / "results.jsonl").read_text())["test"][0]["top_votes"]) >= 1

    # A run recorded before --ttt-init existed started its rows at the mean: it resumes as such.
    assert _eval(checkpoint, data, tmp_path / "older", "--tasks", UNSEEN_ID, "--ttt-steps", "2") == 0
    run = json.loads((tmp_path / "older" / "run.json").read_text())
    assert "candidates" not in run["settings"]["ttt"]  # recorded only where it matters, with init nearest
    del run["settings"]["ttt"]["init"]
    (tmp_path / "older" / "run.json").write_text(json.dumps(run))
    assert _eval(checkpoint, data, tmp_path / "older", "--tasks", UNSEEN_ID, "--ttt-steps", "2", "--resume",
                 "--ttt-init", "nearest") == 2
    assert "ttt.init 'mean' -> 'nearest'" in capsys.readouterr().err
    assert _eval(checkpoint, data, tmp_path / "older", "--tasks", UNSEEN_ID, "--ttt-steps", "2", "--resume") == 0


def test_trm_eval_with_ttt_gives_the_same_attempts_without_the_test_outputs(checkpoint, tmp_path):
    task = load_tasks("arc-agi-1:evaluation", ids=[UNSEEN_ID]).raise_if_problems().tasks[0]
    blind = tmp_path / "blind_challenges.json"
    blind.write_text(json.dumps({task.id: task.to_json(with_solutions=False)}))
    assert _eval(checkpoint, "arc-agi-1:evaluation", tmp_path / "solved", "--tasks", UNSEEN_ID, "--ttt-steps", "2") == 0
    assert _eval(checkpoint, str(blind), tmp_path / "blind", "--ttt-steps", "2") == 0
    assert (json.loads((tmp_path / "solved" / "submission.json").read_text())
            == json.loads((tmp_path / "blind" / "submission.json").read_text()))


def test_plan_ttt_steps_reaches_the_trm_proposer_and_is_recorded(checkpoint, tmp_path):
    from planner.build import PlanSetup, build_planner

    planner, meta = build_planner(PlanSetup(proposers=("trm",), trm=str(checkpoint), ttt_steps=2))
    assert planner.proposers[0].ttt.steps == 2 and meta["trm_ttt"]["steps"] == 2
    assert "trm_ttt" not in build_planner(PlanSetup(proposers=("trm",), trm=str(checkpoint)))[1]
    out = tmp_path / "plan"
    args = ["plan", "--data", "arc-agi-1:evaluation", "--tasks", UNSEEN_ID, "--proposers", "trm",
            "--trm", str(checkpoint), "--attempts", "1", "--no-consistency-checks", "--out", str(out), "--quiet"]
    assert main(args + ["--ttt-steps", "2"]) == 0
    assert json.loads((out / "run.json").read_text())["settings"]["trm_ttt"]["steps"] == 2
    assert main(args + ["--ttt-steps", "1", "--resume"]) == 2
    assert main(args + ["--ttt-steps", "2", "--ttt-init", "nearest", "--resume"]) == 2
    setup = PlanSetup(proposers=("trm",), trm=str(checkpoint), ttt_init="nearest")
    planner, meta = build_planner(setup)  # nearest rows with no training steps: still an adaptation
    assert planner.proposers[0].ttt.adapts and meta["trm_ttt"]["init"] == "nearest" and "ttt_steps" not in meta


def test_trm_eval_refuses_ttt_for_a_trm_without_a_puzzle_table(tmp_path, capsys):
    config = TRMConfig(hidden_size=32, num_heads=2, L_layers=1, H_cycles=1, L_cycles=1, halt_max_steps=1,
                       puzzle_emb_len=1, puzzle_emb_ndim=0, forward_dtype="float32", seq_len=CANVAS ** 2)
    save_export(TRM(config), AugmentationPlan.sample([], 1), tmp_path / "plain")
    assert _eval(tmp_path / "plain", "arc-agi-1:evaluation", tmp_path / "out", "--tasks", UNSEEN_ID,
                 "--ttt-steps", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "puzzle-embedding table" in err[0]
