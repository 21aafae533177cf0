"""One rule for a run's directory: a fresh run never writes over results, a resume refuses other
settings (naming each) and warns under other versions, and --resume with nothing there starts fresh."""

from __future__ import annotations

import json

import pytest

from hybrid_pipeline.cli import main
from hybrid_pipeline.runs import RUN_FILE, RunError, open_run, versions


def test_a_fresh_run_records_its_settings_and_versions(tmp_path):
    said = []
    assert open_run(tmp_path / "run", {"attempts": 2, "proposers": ("search",)}, resume=False, say=said.append) is False
    saved = json.loads((tmp_path / "run" / RUN_FILE).read_text())
    assert saved["settings"] == {"attempts": 2, "proposers": ["search"]}
    assert saved["versions"] == versions() and set(saved["versions"]) == {"hybrid-arc", "torch", "transformers"}
    assert said == []


def test_results_there_are_refused_without_resume_and_resumed_with_the_same_settings(tmp_path):
    open_run(tmp_path, {"attempts": 2}, resume=False)
    (tmp_path / "results.jsonl").write_text("{}\n")
    with pytest.raises(RunError, match="already exists; pass --resume"):
        open_run(tmp_path, {"attempts": 2}, resume=False)
    assert open_run(tmp_path, {"attempts": 2}, resume=True) is True


def test_a_resume_names_every_changed_setting_and_leaves_the_files_alone(tmp_path):
    open_run(tmp_path, {"attempts": 2, "seed": 0, "order": "breadth"}, resume=False)
    (tmp_path / "results.jsonl").write_text("{}\n")
    before = (tmp_path / RUN_FILE).read_text()
    with pytest.raises(RunError) as caught:
        open_run(tmp_path, {"attempts": 1, "seed": 0, "order": "closest"}, resume=True)
    assert str(caught.value) == (f"{tmp_path}: cannot resume with other settings than the run there "
                                 "(attempts 2 -> 1; order 'breadth' -> 'closest'); choose another --out")
    assert (tmp_path / RUN_FILE).read_text() == before
    # Only the settings named in `compare` count.
    assert open_run(tmp_path, {"attempts": 2, "seed": 0, "order": "closest"}, resume=True, compare=["attempts"])


def test_resume_with_nothing_to_resume_starts_fresh_and_says_so(tmp_path):
    said = []
    assert open_run(tmp_path / "new", {"a": 1}, resume=True, say=said.append) is False
    assert said == [f"nothing to resume in {tmp_path / 'new'}: starting a fresh run"]


def test_a_resume_under_other_versions_goes_on_with_a_warning(tmp_path):
    open_run(tmp_path, {"a": 1}, resume=False)
    (tmp_path / "results.jsonl").write_text("{}\n")
    saved = json.loads((tmp_path / RUN_FILE).read_text())
    saved["versions"]["torch"] = "0.0.1"
    (tmp_path / RUN_FILE).write_text(json.dumps(saved))
    said = []
    assert open_run(tmp_path, {"a": 1}, resume=True, say=said.append) is True
    assert len(said) == 1 and said[0].startswith(f"warning: resuming {tmp_path} under other versions (torch 0.0.1 -> ")


def test_plan_resume_with_other_search_settings_exits_2_naming_them(tmp_path, capsys):
    out = tmp_path / "plan"
    base = ["plan", "--data", "arc-agi-1:training", "--tasks", "0d3d703e", "--out", str(out), "--quiet"]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--resume", "--search-budget", "20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "(search.budget 300 -> 20)" in err[0]
    # Another task selection is not a setting: the run goes on.
    assert main([*base[:4], "0d3d703e,68b16354", *base[5:], "--resume"]) == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
