"""Result files survive kills: atomic writes and a JSONL log that heals a torn last line."""

from __future__ import annotations

import json

import pytest

from hybrid_pipeline.arc.errors import ARCDataError
from hybrid_pipeline.arc.files import append_jsonl, atomic_write_json, read_jsonl


def test_a_torn_last_line_is_skipped_on_read_and_cut_before_the_next_append(tmp_path):
    log = tmp_path / "results.jsonl"
    append_jsonl(log, {"task_id": "a"})
    with open(log, "a") as f:
        f.write('{"task_id": "b", "te')  # killed mid-write
    assert [r["task_id"] for r in read_jsonl(log)] == ["a"]
    append_jsonl(log, {"task_id": "b"})
    assert log.read_text() == '{"task_id":"a"}\n{"task_id":"b"}\n'


def test_a_broken_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    log = tmp_path / "results.jsonl"
    log.write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(ARCDataError, match="line 2"):
        list(read_jsonl(log))


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_json(path, {"v": 1})
    atomic_write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
