"""Result files survive kills: atomic writes and a JSONL log that heals a torn last line; atomic\nwrites leave the modes an ordinary write would."""

from __future__ import annotations

import json
import os
import stat

import pytest

from hybrid_pipeline.arc.errors import ARCDataError
from hybrid_pipeline.arc.files import append_jsonl, atomic_write_json, current_umask, read_jsonl
from hybrid_pipeline.trm.checkpoint import write_dir_atomically


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


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_current_umask_reads_the_mask_without_changing_it(umask):
    assert current_umask() == umask
    assert current_umask() == umask


def test_atomic_files_and_directories_get_the_modes_the_umask_gives(tmp_path, umask):
    file_mode, dir_mode = {0o022: (0o644, 0o755), 0o027: (0o640, 0o750)}[umask]
    atomic_write_json(tmp_path / "summary.json", {"v": 1})
    atomic_write_json(tmp_path / "summary.json", {"v": 2})  # a replaced file too
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == file_mode

    def write(scratch):
        (scratch / "weights.bin").write_bytes(b"\0")

    write_dir_atomically(tmp_path / "export", write)
    write_dir_atomically(tmp_path / "export", write)
    assert stat.S_IMODE((tmp_path / "export").stat().st_mode) == dir_mode
    assert stat.S_IMODE((tmp_path / "export" / "weights.bin").stat().st_mode) == file_mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "summary.json"]
