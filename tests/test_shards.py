"""--shard K/N splits a run's selected tasks over machines, each task in exactly one shard, and
`hybrid-arc merge` joins the shards' out dirs into the files one run would have written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import without_timing

from hybrid_pipeline.cli import main
from hybrid_pipeline.runs import RunError, Shard, take_shard

PLAN = ["plan", "--data", "arc-agi-1:training", "--limit", "6", "--proposers", "search", "--search-budget", "30",
        "--search-view-budget", "0", "--quiet"]


def run_files(out):
    """results.jsonl (in file order), submission.json and summary.json, timing fields aside."""
    return {"results": [without_timing(json.loads(line)) for line in (out / "results.jsonl").read_text().splitlines()],
            "submission": json.loads((out / "submission.json").read_text()),
            "summary": without_timing(json.loads((out / "summary.json").read_text()))}


@pytest.mark.parametrize("count", [1, 2, 3, 7, 30])
def test_every_task_lands_in_exactly_one_shard_whatever_the_count(count):
    tasks = [SimpleNamespace(id=f"t{i:02d}") for i in range(30)]
    shards = [take_shard(tasks, Shard(k, count), command="plan", data="d").tasks for k in range(1, count + 1)]
    assert sorted(t.id for shard in shards for t in shard) == [t.id for t in tasks]
    assert [t.id for t in shards[0]] == [t.id for t in tasks[::count]]  # positions 1, 1+N, 1+2N, ...
    # What each shard records: the same selection, so a shard of another selection cannot join.
    recorded = {json.dumps(take_shard(tasks, Shard(k, count), command="plan", data="d").settings["shard_of"])
                for k in range(1, count + 1)}
    assert len(recorded) == 1


def test_more_shards_than_tasks_is_refused_naming_the_most_that_fit():
    with pytest.raises(RunError, match=r"only 2 tasks are selected, so shard 3 would hold none; split them into "
                                       r"at most 2 shards"):
        take_shard([SimpleNamespace(id="a"), SimpleNamespace(id="b")], Shard(3, 3), command="plan", data="d")


@pytest.mark.parametrize("value", ["0/2", "3/2", "x/y", "1/0", "1", "1/2/3"])
def test_a_bad_shard_exits_2_with_one_line(value, tmp_path, capsys):
    assert main([*PLAN, "--out", str(tmp_path / "out"), "--shard", value]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --shard {value}: expected K/N, shard K of N with 1 <= K <= N (e.g. 1/4)"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [
    ["baseline", "--data", "arc-agi-1:training", "--backbone", "tiny-random"],
    ["trm", "eval", "--data", "arc-agi-1:training", "--checkpoint", "no-such-dir"]])
def test_baseline_and_trm_eval_check_the_shard_before_loading_anything(command, tmp_path, capsys):
    assert main([*command, "--out", str(tmp_path / "out"), "--shard", "3/2"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --shard 3/2: expected K/N, shard K of N with 1 <= K <= N (e.g. 1/4)"]


@pytest.fixture(scope="module")
def plan_runs(tmp_path_factory):
    """One run over 6 tasks, and the same command as shards 1/2 and 2/2."""
    root = tmp_path_factory.mktemp("shards")
    for name, extra in (("whole", []), ("s1", ["--shard", "1/2"]), ("s2", ["--shard", "2/2"])):
        assert main([*PLAN, "--out", str(root / name), *extra]) == 0
    return root


def test_merged_shards_equal_one_run_but_for_timing(plan_runs, tmp_path, capsys):
    out = tmp_path / "merged"
    capsys.readouterr()
    assert main(["merge", str(out), str(plan_runs / "s2"), str(plan_runs / "s1")]) == 0  # any order
    said = capsys.readouterr().out.splitlines()
    assert said[0] == (f"merged 2 of 2 shards of a plan run on arc-agi-1:training: 6 of 6 tasks finished; wrote "
                       f"results.jsonl, submission.json, summary.json, report.html, run.json in {out}")
    assert run_files(out) == run_files(plan_runs / "whole")
    assert (out / "submission.json").read_text() == (plan_runs / "whole" / "submission.json").read_text()
    merged_run, whole_run = (json.loads((d / "run.json").read_text()) for d in (out, plan_runs / "whole"))
    assert merged_run["settings"] == whole_run["settings"]  # no shard: the merged dir is the whole run
    assert "<h2>hybrid-arc plan</h2>" in (out / "report.html").read_text()
    for task_id in run_files(out)["submission"]:
        assert f'id="{task_id}"' in (out / "report.html").read_text()


def test_merging_plan_shards_loads_no_model_code(plan_runs, tmp_path):
    probe = ("import sys; from hybrid_pipeline.cli import main; "
             f"code = main(['merge', {str(tmp_path / 'm')!r}, {str(plan_runs / 's1')!r}, "
             f"{str(plan_runs / 's2')!r}]); "
             "print(code, [m for m in ('torch', 'transformers', 'hybrid_pipeline.baseline') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.stdout.splitlines()[-1] == "0 []", done.stderr[-2000:]


def test_each_shard_runs_its_tasks_and_says_which(plan_runs, capsys):
    whole = [r["task_id"] for r in run_files(plan_runs / "whole")["results"]]
    assert [r["task_id"] for r in run_files(plan_runs / "s1")["results"]] == whole[0::2]
    assert [r["task_id"] for r in run_files(plan_runs / "s2")["results"]] == whole[1::2]
    assert main([*PLAN, "--out", str(plan_runs / "s2"), "--shard", "2/2", "--resume"]) == 0  # the same shard goes on
    assert capsys.readouterr().out.splitlines()[0] == "shard 2 of 2: 3 of the 6 selected tasks (positions 2, 4, 6, ...)"


def test_a_resume_as_another_shard_or_without_one_is_refused(plan_runs, capsys):
    out = plan_runs / "s1"
    before = (out / "results.jsonl").read_text()
    assert main([*PLAN, "--out", str(out), "--shard", "2/2", "--resume"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {out}: cannot resume with other settings than the run there (shard '1/2' -> '2/2'); choose "
        "another --out"]
    assert main([*PLAN, "--out", str(out), "--resume"]) == 2
    assert "shard '1/2' -> None" in capsys.readouterr().err
    assert main([*PLAN[:4], "5", *PLAN[5:], "--out", str(out), "--shard", "1/2", "--resume"]) == 2  # another selection
    assert "shard_of.tasks 6 -> 5" in capsys.readouterr().err
    assert (out / "results.jsonl").read_text() == before


def test_merge_refuses_a_missing_shard_unless_partial_and_a_resume_finishes_the_partial_merge(plan_runs, tmp_path,
                                                                                              capsys):
    out = tmp_path / "merged"
    assert main(["merge", str(out), str(plan_runs / "s1")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: shard 2 of 2 is missing; pass its out dir too, or --partial to merge without it"]
    assert not out.exists()
    assert main(["merge", str(out), str(plan_runs / "s1"), "--partial"]) == 0
    assert "(shard 2 missing)" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["missing_shards"] == [2] and summary["tasks"] == 3
    # The merged dir is a run of its own: --resume with the whole selection runs the missing tasks.
    assert main([*PLAN, "--out", str(out), "--resume"]) == 0
    assert run_files(out)["submission"] == run_files(plan_runs / "whole")["submission"]
    assert sorted(r["task_id"] for r in run_files(out)["results"]) == sorted(run_files(plan_runs / "whole")["submission"])


def test_merge_refuses_a_shard_given_twice_and_a_task_in_two_shards(plan_runs, tmp_path, capsys):
    s1, s2 = plan_runs / "s1", plan_runs / "s2"
    assert main(["merge", str(tmp_path / "m"), str(s1), str(s1)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: cannot merge {s1} and {s1}: both are shard 1/2"]
    bad = tmp_path / "s2-with-a-task-of-s1"
    shutil.copytree(s2, bad)
    stolen = next(iter(json.loads((s1 / "submission.json").read_text())))
    submission = json.loads((bad / "submission.json").read_text())
    submission[stolen] = json.loads((s1 / "submission.json").read_text())[stolen]
    (bad / "submission.json").write_text(json.dumps(submission))
    assert main(["merge", str(tmp_path / "m"), str(s1), str(bad)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: cannot merge {s1} and {bad}: task {stolen} is in both"]
    assert not (tmp_path / "m").exists()


def test_merge_refuses_shards_of_runs_with_other_settings_naming_the_setting(plan_runs, tmp_path, capsys):
    other = tmp_path / "s2-budget-20"
    assert main([*PLAN, "--search-budget", "20", "--out", str(other), "--shard", "2/2"]) == 0
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "m"), str(plan_runs / "s1"), str(other)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: cannot merge {plan_runs / 's1'} and {other}: their settings differ (search.budget 30 -> 20)"]
    three = tmp_path / "s2-of-3"
    shutil.copytree(plan_runs / "s2", three)
    run = json.loads((three / "run.json").read_text())
    run["settings"]["shard"] = "2/3"
    (three / "run.json").write_text(json.dumps(run))
    assert main(["merge", str(tmp_path / "m"), str(plan_runs / "s1"), str(three)]) == 2
    assert "their settings differ (shards 2 -> 3)" in capsys.readouterr().err


def test_merge_refuses_a_non_empty_out_unless_overwrite_and_a_dir_that_is_not_a_shard(plan_runs, tmp_path, capsys):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    shards = [str(plan_runs / "s1"), str(plan_runs / "s2")]
    assert main(["merge", str(out), *shards]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {out} is not empty; pass --overwrite to replace the run files in it, or choose another OUT"]
    assert main(["merge", str(out), *shards, "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # only the run's files are replaced
    assert main(["merge", str(tmp_path / "m"), str(plan_runs / "whole"), shards[1]]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {plan_runs / 'whole'}: not a shard (its run was not started with --shard K/N)")
    assert main(["merge", shards[0], *shards, "--overwrite"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {shards[0]} is one of the shards being merged; " \
                                                        "choose another OUT"


BASELINE = ["baseline", "--data", "arc-agi-1:training", "--limit", "3", "--backbone", "tiny-random",
            "--max-new-tokens", "16"]
BASELINE_RATES = ("tokens_per_second", "seconds_per_task")  # from the seconds: timing too


def test_baseline_shards_merge_to_the_files_of_one_run(tmp_path, capsys):
    for name, extra in (("whole", []), ("s1", ["--shard", "1/2"]), ("s2", ["--shard", "2/2"])):
        assert main([*BASELINE, "--out", str(tmp_path / name), *extra]) == 0
    assert main(["merge", str(tmp_path / "merged"), str(tmp_path / "s1"), str(tmp_path / "s2")]) == 0
    assert "of a baseline run on arc-agi-1:training: 3 of 3 tasks finished" in capsys.readouterr().out
    merged, whole = run_files(tmp_path / "merged"), run_files(tmp_path / "whole")
    for files in (merged, whole):
        files["summary"] = {k: v for k, v in files["summary"].items() if k not in BASELINE_RATES}
    assert merged == whole
    assert not (tmp_path / "merged" / "report.html").exists()  # the baseline writes none


def test_trm_eval_shards_merge_to_the_files_of_one_run(tmp_path, capsys):
    from test_trm_train import EVAL_IDS, tiny_config

    from hybrid_pipeline.trm.train import train_trm

    final = train_trm(tiny_config(tmp_path / "train", tmp_path / "cache", max_steps=2), progress=False).final_dir
    command = ["trm", "eval", "--checkpoint", str(final), "--data", "arc-agi-1:evaluation",
               "--tasks", ",".join([*EVAL_IDS, "00576224", "009d5c81"]), "--batch-size", "4"]
    for name, extra in (("whole", []), ("s1", ["--shard", "1/2"]), ("s2", ["--shard", "2/2"])):
        assert main([*command, "--out", str(tmp_path / name), *extra]) == 0
    capsys.readouterr()
    assert main([*command, "--out", str(tmp_path / "s1"), "--shard", "2/2", "--resume"]) == 2
    assert "(shard '1/2' -> '2/2')" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "merged"), str(tmp_path / "s2"), str(tmp_path / "s1")]) == 0
    assert run_files(tmp_path / "merged") == run_files(tmp_path / "whole")
