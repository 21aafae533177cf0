"""Hugging Face `datasets` of ARC examples: augmented TRM token grids, and text prompt/answer pairs.

Both builders are deterministic given their config (seed included) and cache the result on disk
under a key made from the tasks' content and the config, so a second build is a load.

TRM rows (one per augmented input/output pair):
    inputs [canvas**2 = 900] uint8, labels [900] uint8 (0 = PAD, ignored by the loss; all PAD when the output is
    unknown), puzzle_id int32 (one per task x augmentation, the index into the TRM's puzzle-embedding
    table), puzzle_name, task_id, split ("train"/"test"), pair_index, dihedral, colours [10],
    offset_row, offset_col. The augmentation is recorded so a prediction maps back with
    `Augmentation(dihedral, colours).invert`.

Text rows: task_id, test_index, prompt, answer ("" when unknown), dihedral, colours.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hybrid_pipeline.arc.files import creation_mode
from hybrid_pipeline.arc.grids import (IDENTITY, Augmentation, encode_grid, random_offset,
                                       sample_augmentations)
from hybrid_pipeline.arc.tasks import NUM_COLOURS, Task, leave_one_out
from hybrid_pipeline.arc.text import grid_to_text, task_to_prompt
from hybrid_pipeline.arc.views import task_augmentations

# Bump when the row layout or the choice of augmentations changes, so old caches are not read back.
CACHE_FORMAT = 4


@dataclass(frozen=True)
class TRMDataConfig:
    """How tasks become TRM examples. The paper uses 1000 augmentations per puzzle."""

    num_augmentations: int = 8  # per task, identity included
    splits: tuple[str, ...] = ("train", "test")  # which pairs of each task become rows
    translate: bool = True  # random offset in the 30x30 canvas (training); False at evaluation
    fix_background: bool = True  # colour 0 stays 0 under colour permutations
    canvas: int = 30  # canvas side: 30 for ARC (900 tokens); smaller for toy experiments
    seed: int = 0


@dataclass(frozen=True)
class TextDataConfig:
    """How tasks become prompt/answer pairs for a language model."""

    num_augmentations: int = 1  # identity included
    leave_one_out: bool = False  # also ask for each train output from the other train pairs
    fix_background: bool = True
    seed: int = 0


BLANK_PUZZLE = "<blank>"


@dataclass
class AugmentationPlan:
    """Which augmentations each task gets, and the puzzle id of every (task, augmentation).

    The TRM learns one embedding per puzzle id, so training rows and evaluation rows of the same
    task must agree on ids: build the plan once and pass it to both. Id 0 is reserved for
    `BLANK_PUZZLE`, the embedding used for tasks never seen in training. `names[i]` is
    ``"<task_id>/<augmentation name>"``; saved beside a checkpoint, it lets evaluation rebuild the plan.
    """

    names: list[str]

    @classmethod
    def sample(cls, tasks: Sequence[Task], num_augmentations: int, *, seed: int = 0,
               fix_background: bool = True) -> AugmentationPlan:
        """Each task gets `arc.views.task_augmentations(task.id, num_augmentations, seed)`: the same
        augmentations whatever the other tasks of the list, and those the other predictors give it."""
        names = [BLANK_PUZZLE]
        for task in tasks:
            names += [f"{task.id}/{aug.name}"
                      for aug in task_augmentations(task.id, num_augmentations, seed, fix_background=fix_background)]
        return cls(names)

    @property
    def num_puzzles(self) -> int:
        return len(self.names)

    def for_task(self, task_id: str) -> list[tuple[int, Augmentation]]:
        """(puzzle id, augmentation) pairs of a task; empty if the plan does not know it."""
        return self._by_task().get(task_id, [])

    @property
    def views_per_task(self) -> int:
        """How many views the plan's tasks have (the most any has; 1 for a plan without tasks)."""
        return max(map(len, self._by_task().values()), default=1)

    def _by_task(self) -> dict[str, list[tuple[int, Augmentation]]]:
        if not hasattr(self, "_index"):
            self._index: dict[str, list[tuple[int, Augmentation]]] = {}
            for i, name in enumerate(self.names[1:], 1):
                tid, _, aug = name.rpartition("/")
                self._index.setdefault(tid, []).append((i, Augmentation.from_name(aug)))
        return self._index


def trm_rows(tasks: Sequence[Task], config: TRMDataConfig = TRMDataConfig(),
             plan: AugmentationPlan | None = None) -> dict[str, Any]:
    """Columns of the TRM dataset as numpy arrays / lists (no `datasets` import, no caching).

    Without a `plan`, one is sampled from the config (`num_augmentations`, `seed`). Tasks the plan
    does not know get the identity augmentation and the blank puzzle id 0.
    """
    if plan is None:
        plan = AugmentationPlan.sample(tasks, config.num_augmentations, seed=config.seed,
                                       fix_background=config.fix_background)
    rng = np.random.default_rng([config.seed, 1])  # translations: a stream separate from the plan's
    seq_len = config.canvas * config.canvas
    cols: dict[str, list] = {k: [] for k in ("inputs", "labels", "puzzle_id", "puzzle_name", "task_id",
                                              "split", "pair_index", "dihedral", "colours",
                                              "offset_row", "offset_col")}
    for task in tasks:
        for puzzle_id, aug in plan.for_task(task.id) or [(0, IDENTITY)]:
            for split in config.splits:
                for index, ex in enumerate(getattr(task, split)):
                    grid_in = aug.apply(ex.input)
                    grid_out = None if ex.output is None else aug.apply(ex.output)
                    shapes = [grid_in.shape] + ([grid_out.shape] if grid_out is not None else [])
                    offset = random_offset(shapes, rng, config.canvas) if config.translate else (0, 0)
                    cols["inputs"].append(encode_grid(grid_in, offset, config.canvas))
                    cols["labels"].append(np.zeros(seq_len, np.uint8) if grid_out is None
                                          else encode_grid(grid_out, offset, config.canvas))
                    cols["puzzle_id"].append(puzzle_id)
                    cols["puzzle_name"].append(plan.names[puzzle_id])
                    cols["task_id"].append(task.id)
                    cols["split"].append(split)
                    cols["pair_index"].append(index)
                    cols["dihedral"].append(aug.dihedral)
                    cols["colours"].append(list(aug.colours))
                    cols["offset_row"].append(offset[0])
                    cols["offset_col"].append(offset[1])
    dtypes = {"inputs": np.uint8, "labels": np.uint8, "puzzle_id": np.int32, "pair_index": np.int32,
              "dihedral": np.int8, "colours": np.uint8, "offset_row": np.int8, "offset_col": np.int8}
    for key, dtype in dtypes.items():
        cols[key] = np.asarray(cols[key], dtype=dtype)
    cols["inputs"] = cols["inputs"].reshape(-1, seq_len)
    cols["labels"] = cols["labels"].reshape(-1, seq_len)
    cols["colours"] = cols["colours"].reshape(-1, NUM_COLOURS)
    return cols


def text_rows(tasks: Sequence[Task], config: TextDataConfig = TextDataConfig()) -> dict[str, list]:
    """Columns of the text dataset: one prompt per (augmentation, test input), answers when known."""
    rng = np.random.default_rng(config.seed)
    cols: dict[str, list] = {k: [] for k in ("task_id", "test_index", "prompt", "answer", "dihedral",
                                              "colours")}

    def add(task: Task, test_index: int, aug: Augmentation) -> None:
        answer = task.test[test_index].output
        cols["task_id"].append(task.id)
        cols["test_index"].append(test_index)
        cols["prompt"].append(task_to_prompt(task, test_index))
        cols["answer"].append("" if answer is None else grid_to_text(answer))
        cols["dihedral"].append(aug.dihedral)
        cols["colours"].append(list(aug.colours))

    for task in tasks:
        for aug in sample_augmentations(config.num_augmentations, rng, fix_background=config.fix_background):
            view = aug.apply_task(task)
            for i in range(len(view.test)):
                add(view, i, aug)
            if config.leave_one_out:
                for sub in leave_one_out(view):
                    add(sub, 0, aug)
    return cols


def build_trm_dataset(tasks: Sequence[Task], config: TRMDataConfig = TRMDataConfig(), *,
                      plan: AugmentationPlan | None = None, cache_dir: str | os.PathLike | None = None):
    """`datasets.Dataset` of augmented TRM examples (torch-ready columns), cached by content hash."""
    from datasets import Dataset

    key_extra = None if plan is None else plan.names
    return _cached("trm", tasks, config, cache_dir,
                   lambda: Dataset(_arrow_table(trm_rows(tasks, config, plan))), extra=key_extra)


def _arrow_table(cols: dict[str, Any]):
    """Columns -> Arrow table without a Python round trip: 2-D arrays become fixed-size lists."""
    import pyarrow as pa

    def column(values: Any):
        if isinstance(values, np.ndarray) and values.ndim == 2:
            return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
        return pa.array(values)

    return pa.table({key: column(values) for key, values in cols.items()})


def build_text_dataset(tasks: Sequence[Task], config: TextDataConfig = TextDataConfig(), *,
                       cache_dir: str | os.PathLike | None = None):
    """`datasets.Dataset` of prompt/answer pairs, cached by content hash."""
    from datasets import Dataset

    return _cached("text", tasks, config, cache_dir, lambda: Dataset.from_dict(text_rows(tasks, config)))


def dataset_key(kind: str, tasks: Sequence[Task], config: Any, extra: Any = None) -> str:
    """Cache key: the row layout version, the config, every task's full content (outputs too), and
    `extra` (e.g. an augmentation plan's names)."""
    h = hashlib.sha256(f"{kind}/{CACHE_FORMAT}/".encode())
    h.update(json.dumps([asdict(config), extra], sort_keys=True).encode())
    for task in tasks:
        h.update(json.dumps([task.id, task.to_json()], separators=(",", ":")).encode())
    return h.hexdigest()[:24]


def _cached(kind: str, tasks: Sequence[Task], config: Any, cache_dir: str | os.PathLike | None,
            build: Callable[[], Any], extra: Any = None):
    from datasets import load_from_disk

    if cache_dir is None:
        return build()
    target = Path(cache_dir) / f"{kind}-{dataset_key(kind, tasks, config, extra)}"
    if target.is_dir():
        return load_from_disk(str(target))
    dataset = build()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build in a scratch directory and rename, so a killed build never leaves a half-written cache.
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        dataset.save_to_disk(str(scratch))
        os.chmod(scratch, creation_mode(directory=True))  # mkdtemp made it 0700
        os.replace(scratch, target)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        if not target.is_dir():
            raise
    return load_from_disk(str(target))
