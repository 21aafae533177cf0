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


def test_overwrite_replaces_a_run_with_other_settings_and_says_so(tmp_path):
    open_run(tmp_path, {"attempts": 2}, resume=False)
    (tmp_path / "results.jsonl").write_text('{"task_id": "old"}\n')
    said = []
    assert open_run(tmp_path, {"attempts": 1}, resume=False, overwrite=True, say=said.append) is False
    assert said == [f"overwriting the run in {tmp_path}"]
    assert not (tmp_path / "results.jsonl").exists()
    assert json.loads((tmp_path / RUN_FILE).read_text())["settings"] == {"attempts": 1}
    with pytest.raises(RunError, match="pass one of them"):
        open_run(tmp_path, {"attempts": 1}, resume=True, overwrite=True)


def test_plan_refuses_resume_with_overwrite_as_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["plan", "--data", "arc-agi-1:evaluation", "--limit", "1", "--out", str(tmp_path),
              "--resume", "--overwrite"])
    assert stopped.value.code == 2
    assert "argument --overwrite: not allowed with argument --resume" in capsys.readouterr().err


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


def _answers(path):
    """Each task's attempt grids, in file order (timing fields aside)."""
    return [(r["task_id"], [[a["grid"] for a in t["attempts"]] for t in r["test"]])
            for r in map(json.loads, path.read_text().splitlines())]


def test_sigterm_stops_plan_like_ctrl_c_and_a_resume_reaches_the_uninterrupted_files(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    # Two quick tasks first, then ones that spend the whole budget: the signal lands mid-run.
    ids = "007bbfb7,0520fde7,017c7c7b,025d127b,045e512c,00d62c1b,05269061,05f2a901"
    argv = [sys.executable, "-m", "hybrid_pipeline.cli", "plan", "--data", "arc-agi-1:training", "--tasks", ids,
            "--search-budget", "100", "--search-view-budget", "0", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = subprocess.run([*argv, "--out", str(tmp_path / "whole")], env=env, capture_output=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-2000:]

    cut = tmp_path / "cut"
    run = subprocess.Popen([*argv, "--out", str(cut)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not ((cut / "results.jsonl").exists() and (cut / "results.jsonl").read_text().count("\n") >= 2):
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 143, err.decode()[-2000:]
    assert "rerun with --resume" in err.decode()
    summary = json.loads((cut / "summary.json").read_text())
    assert summary["interrupted"] is True and (cut / "report.html").is_file()
    done = _answers(cut / "results.jsonl")
    assert 2 <= len(done) < 8  # every line whole, the run cut short

    again = subprocess.run([*argv, "--out", str(cut), "--resume"], env=env, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _answers(cut / "results.jsonl") == _answers(tmp_path / "whole" / "results.jsonl")
    submissions = [json.loads((d / "submission.json").read_text()) for d in (cut, tmp_path / "whole")]
    assert submissions[0] == submissions[1]
    assert json.loads((cut / "summary.json").read_text())["interrupted"] is False
