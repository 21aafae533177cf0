import os
import stat

import numpy as np

from hybrid_pipeline.arc.datasets import (AugmentationPlan, TextDataConfig, TRMDataConfig, build_text_dataset,
                                          build_trm_dataset, trm_rows)
from hybrid_pipeline.arc.grids import Augmentation, crop_at_eos
from hybrid_pipeline.arc.text import parse_grid


def test_trm_rows_record_the_augmentation_so_labels_map_back(arc1_eval):
    tasks = arc1_eval[:5]
    cols = trm_rows(tasks, TRMDataConfig(num_augmentations=4, translate=False, seed=1))
    by_id = {t.id: t for t in tasks}
    n_pairs = sum(len(t.train) + len(t.test) for t in tasks)
    assert cols["inputs"].shape == (4 * n_pairs, 900) and cols["inputs"].dtype == np.uint8
    assert min(cols["puzzle_id"]) == 1 and max(cols["puzzle_id"]) == 4 * len(tasks)  # 0 is the blank puzzle
    for i in range(len(cols["task_id"])):
        task = by_id[cols["task_id"][i]]
        ex = getattr(task, cols["split"][i])[cols["pair_index"][i]]
        aug = Augmentation(cols["dihedral"][i], tuple(cols["colours"][i]))
        np.testing.assert_array_equal(aug.invert(crop_at_eos(cols["labels"][i])), ex.output)
        np.testing.assert_array_equal(aug.invert(crop_at_eos(cols["inputs"][i])), ex.input)


def test_unknown_outputs_become_all_pad_labels(arc1_eval):
    task = arc1_eval[0].without_solutions()
    cols = trm_rows([task], TRMDataConfig(num_augmentations=1, splits=("test",)))
    assert cols["labels"].sum() == 0 and cols["inputs"].sum() > 0


def test_trm_dataset_is_deterministic_and_cached_by_content(tmp_path, arc1_eval):
    config = TRMDataConfig(num_augmentations=3, seed=7)
    a = build_trm_dataset(arc1_eval[:3], config, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    b = build_trm_dataset(arc1_eval[:3], config, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    fresh = build_trm_dataset(arc1_eval[:3], config)
    assert a["inputs"] == b["inputs"] == fresh["inputs"]
    assert a["offset_row"] == fresh["offset_row"]
    other = build_trm_dataset(arc1_eval[:3], TRMDataConfig(num_augmentations=3, seed=8), cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2 and other["inputs"] != a["inputs"]
    torch_row = a.with_format("torch")[0]
    assert torch_row["inputs"].shape == (900,)


def test_a_cache_directory_gets_the_mode_the_umask_gives(tmp_path, arc1_eval):
    old = os.umask(0o027)
    try:
        build_text_dataset(arc1_eval[:1], cache_dir=tmp_path)
    finally:
        os.umask(old)
    (cache,) = tmp_path.iterdir()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o750  # not mkdtemp's 0700


def test_text_dataset_answers_parse_back_to_the_augmented_output(arc1_eval):
    task = arc1_eval[1]
    ds = build_text_dataset([task], TextDataConfig(num_augmentations=3, leave_one_out=True, seed=0))
    assert len(ds) == 3 * (len(task.test) + len(task.train))
    for row in ds:
        assert row["prompt"].endswith("Output:\n")
        if row["test_index"] == 0 and row["prompt"].count("Example") == len(task.train):
            aug = Augmentation(row["dihedral"], tuple(row["colours"]))
            np.testing.assert_array_equal(aug.invert(parse_grid(row["answer"])), task.test[0].output)


def test_one_plan_gives_training_and_evaluation_rows_the_same_puzzle_ids(arc1_eval):
    tasks = arc1_eval[:4]
    plan = AugmentationPlan.sample(tasks, 3, seed=5)
    train = trm_rows(tasks, TRMDataConfig(splits=("train",)), plan)
    test = trm_rows(tasks[2:], TRMDataConfig(splits=("test",), translate=False), plan)
    name_of = dict(zip(train["puzzle_id"].tolist(), train["puzzle_name"]))
    assert all(name_of[i] == n for i, n in zip(test["puzzle_id"].tolist(), test["puzzle_name"]))
    assert {n.split("/")[0] for n in test["puzzle_name"]} == {t.id for t in tasks[2:]}
    unseen = trm_rows(arc1_eval[10:11], TRMDataConfig(splits=("test",)), plan)
    assert set(unseen["puzzle_id"].tolist()) == {0} and unseen["dihedral"].tolist() == [0] * len(unseen["dihedral"])
    assert AugmentationPlan(plan.names).for_task(tasks[0].id) == plan.for_task(tasks[0].id)


def test_a_task_with_more_than_32767_pairs_keeps_every_pair_index():
    # generated datasets (toy families, RE-ARC-style) hold tens of thousands of pairs per task
    from hybrid_pipeline.arc.tasks import Example, Task

    grid = np.ones((1, 1), np.uint8)
    task = Task("big", tuple(Example(grid, grid) for _ in range(33_000)), ())
    cols = trm_rows([task], TRMDataConfig(num_augmentations=1, translate=False, canvas=2))
    assert len(cols["pair_index"]) == 33_000 and int(cols["pair_index"][-1]) == 32_999
