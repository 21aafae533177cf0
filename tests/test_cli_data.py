"""End-to-end checks of `hybrid-arc data ...` and `hybrid-arc score` on real bundled tasks."""

import json
import os
import subprocess
import sys

import pytest

from conftest import task_json
from hybrid_pipeline.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_entry_point_help_is_fast_and_imports_no_torch():
    probe = ("import sys; from hybrid_pipeline.cli import main, build_parser; build_parser(); "
             "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]; "
             "print(heavy)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    help_run = subprocess.run([sys.executable, "-m", "hybrid_pipeline.cli", "--help"], capture_output=True, text=True)
    assert help_run.returncode == 0 and "data" in help_run.stdout and "score" in help_run.stdout


def test_version_prints_the_installed_version_or_the_package_attribute(capsys, monkeypatch):
    import importlib.metadata

    import hybrid_pipeline

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"hybrid-arc {importlib.metadata.version('hybrid-arc')}\n"

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.setattr(hybrid_pipeline, "__version__", "9.8.7", raising=False)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == "hybrid-arc 9.8.7\n"


@pytest.mark.parametrize("argv", [["data", "show", "--data", "{tasks}", "abc"], ["--version"]],
                         ids=["command", "argparse"])
def test_a_reader_that_stops_early_ends_the_command_quietly(write_json, argv):
    # As `hybrid-arc data show ... | head` once head has exited: the reader is gone before the write.
    task = write_json("tasks/abc.json", task_json())
    reader = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE)
    reader.wait(timeout=60)
    writer = subprocess.run([sys.executable, "-m", "hybrid_pipeline.cli", *(a.format(tasks=task.parent) for a in argv)],
                            stdout=reader.stdin, stderr=subprocess.PIPE, text=True, timeout=120)
    reader.stdin.close()
    assert writer.stderr == ""  # no traceback, no "Exception ignored" at exit
    assert writer.returncode == 141  # 128 + SIGPIPE, what a shell reports for a command `| head` cut short


def test_stats_reports_400_tasks_for_arc_agi_1_evaluation(capsys):
    code, out, _ = run(capsys, "data", "stats", "--data", "arc-agi-1:evaluation")
    assert code == 0
    assert "tasks           400" in out and "test inputs     419" in out
    assert "1: 381, 2: 19" in out


def test_show_draws_plain_digits_with_no_color_and_ansi_otherwise(capsys, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run(capsys, "data", "show", "--data", "arc-agi-1:evaluation", "00576224")
    assert code == 0 and "\x1b[" not in out
    assert "8 6  ->  8 6 8 6 8 6" in out
    from hybrid_pipeline.arc.render import render_task
    from hybrid_pipeline.arc.tasks import load_tasks
    task = load_tasks("arc-agi-1:evaluation", ids=["00576224"]).tasks[0]
    assert "\x1b[48;2;" in render_task(task, colour=True)


def test_show_unknown_task_is_exit_2(capsys):
    code, _, err = run(capsys, "data", "show", "--data", "arc-agi-1:evaluation", "nope")
    assert code == 2 and err.count("\n") == 1 and "nope" in err


def test_check_lists_each_broken_file_and_exits_2(tmp_path, write_json, capsys):
    write_json("mix/good.json", task_json())
    bad1 = write_json("mix/ragged.json", {"train": [{"input": [[1, 2], [3]], "output": [[1]]}],
                                          "test": [{"input": [[1]]}]})
    bad2 = write_json("mix/colour.json", {"train": [{"input": [[1]], "output": [[11]]}],
                                          "test": [{"input": [[1]]}]})
    bad3 = write_json("mix/trunc.json", '{"train": [{"input": [[1]]')
    code, out, err = run(capsys, "data", "check", str(tmp_path / "mix"))
    assert code == 2
    lines = err.strip().split("\n")
    assert lines[:-1] == [
        f"error: {bad2}: task colour: train[0].output: row 0 col 0 is 11, expected an int 0..9",
        f"error: {bad1}: task ragged: train[0].input: row 1 has 1 cell, expected 2 (grid must be rectangular)",
        f"error: {bad3}: not valid JSON: Expecting ',' delimiter at line 1 column 27",
    ]
    assert lines[-1] == "error: 1 valid task, 3 problems (listed above)"
    code, out, _ = run(capsys, "data", "check", str(tmp_path / "mix" / "good.json"))
    assert code == 0 and out == "1 valid task, 0 problems\n"


def test_check_of_several_paths_holds_each_id_to_one_task(write_json, capsys):
    first = write_json("a/abc.json", task_json(train_pairs=2))
    regrouped = task_json(train_pairs=2)
    regrouped["train"][0], regrouped["test"][0] = regrouped["test"][0], regrouped["train"][0]
    write_json("b/abc.json", regrouped)
    code, out, _ = run(capsys, "data", "check", str(first.parent), str(first.parent.parent / "b"))
    assert code == 0 and out.splitlines() == [
        f"note: merged 1 duplicate task (the same id and the same pairs in {first.parent} and "
        f"{first.parent.parent / 'b'}); each is kept once", "1 valid task, 0 problems"]

    other = write_json("c/abc.json", task_json(train_pairs=3))
    code, _, err = run(capsys, "data", "check", str(first.parent), str(other.parent))
    assert code == 2 and err.splitlines() == [
        f"error: task abc: two different tasks under one id, in {first} and in {other} (an id must name one task: "
        "rename one or leave it out of one source)", "error: 1 valid task, 1 problem (listed above)"]


def test_score_reads_a_written_submission_and_rejects_a_broken_one(tmp_path, capsys):
    from hybrid_pipeline.arc.scoring import write_submission
    from hybrid_pipeline.arc.tasks import load_tasks

    tasks = load_tasks("arc-agi-1:evaluation", limit=4).tasks
    # Perfect answers on the first two tasks only.
    attempts = {t.id: [[ex.output] for ex in t.test] for t in tasks[:2]}
    path = tmp_path / "submission.json"
    write_submission(path, attempts, tasks)
    code, out, _ = run(capsys, "score", "--submission", str(path), "--data", "arc-agi-1:evaluation",
                       "--limit", "4", "--json")
    assert code == 0
    report = json.loads(out.strip().split("\n")[-1])
    assert report["task_score"] == 0.5 and report["tasks"] == 4
    assert "per-task score     50.00%" in out

    obj = json.loads(path.read_text())
    del obj[tasks[3].id][0]["attempt_2"]
    path.write_text(json.dumps(obj))
    code, _, err = run(capsys, "score", "--submission", str(path), "--data", "arc-agi-1:evaluation", "--limit", "4")
    assert code == 2
    assert err == f"error: {path}: task {tasks[3].id}: test[0]: missing 'attempt_2'\n"


@pytest.fixture
def tiny_run(write_json):
    """Four hand-made tasks (aa, bb with two test inputs, cc, dd) and a submission for aa and bb only:
    aa solved by its second attempt, bb's first test input solved and its second not."""
    def task(*answers):
        return {"train": [{"input": [[0]], "output": [[0]]}], "test": [{"input": [[0]], "output": a} for a in answers]}

    for task_id, answers in {"aa": [[[1]]], "bb": [[[2]], [[3]]], "cc": [[[4]]], "dd": [[[5]]]}.items():
        write_json(f"data/{task_id}.json", task(*answers))
    submission = write_json("submission.json", {
        "aa": [{"attempt_1": [[9]], "attempt_2": [[1]]}],
        "bb": [{"attempt_1": [[2]], "attempt_2": [[9]]}, {"attempt_1": [[9]], "attempt_2": [[2, 3]]}]})
    return str(submission), str(submission.parent / "data")


def test_score_of_a_partial_submission_scores_the_tasks_it_holds_and_counts_the_rest(tiny_run, capsys):
    submission, data = tiny_run
    code, out, err = run(capsys, "score", "--submission", submission, "--data", data, "--json")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[:-1] == [
        f"{data}: 2 tasks, 3 test outputs, 2 attempts each",
        "  per-task score     75.00%  (mean over tasks of the fraction of test inputs solved)",  # (1 + 1/2) / 2
        "  per-output score   66.67%  (2 of 3 test outputs solved)",
        "  missing tasks     2 of 4 not in the submission; counted as unsolved: per-task 37.50%, per-output 40.00%",
    ]
    assert json.loads(lines[-1]) == {
        "task_score": 0.75, "output_score": 2 / 3, "tasks": 2, "test_outputs": 3, "solved_test_outputs": 2,
        "per_task": {"aa": [True], "bb": [True, False]}, "missing_tasks": ["cc", "dd"],
        "with_missing_unsolved": {"task_score": 0.375, "output_score": 0.4, "tasks": 4, "test_outputs": 5,
                                  "solved_test_outputs": 2}}

    code, out, _ = run(capsys, "score", "--submission", submission, "--data", data, "--tasks", "aa,bb", "--strict")
    assert code == 0 and "missing" not in out and "  per-task score     75.00%" in out


def test_score_strict_requires_every_task_in_one_line(tiny_run, capsys):
    submission, data = tiny_run
    code, out, err = run(capsys, "score", "--submission", submission, "--data", data, "--strict")
    assert (code, out) == (2, "")
    assert err == f"error: {submission}: 2 of 4 tasks missing from submission (every task must be present): cc, dd\n"


def test_score_refuses_a_submission_with_none_of_the_tasks_or_tasks_of_another_dataset(tiny_run, capsys):
    submission, data = tiny_run
    code, _, err = run(capsys, "score", "--submission", submission, "--data", data, "--tasks", "c*")
    assert code == 2 and err == f"error: {submission}: holds none of the tasks of {data} being scored (1 task)\n"
    obj = json.loads(open(submission).read())
    with open(submission, "w") as f:
        json.dump({**obj, "zz": obj["aa"]}, f)
    code, _, err = run(capsys, "score", "--submission", submission, "--data", data)
    assert code == 2 and err == f"error: {submission}: task zz: task is not in the dataset being scored\n"


@pytest.mark.parametrize("command", [
    ["data", "stats"], ["score", "--submission", "{submission}"], ["trm", "eval", "--checkpoint", "{out}"],
    ["baseline", "--backbone", "tiny-random"], ["plan"],
], ids=lambda c: " ".join(c[:2]).split(" -")[0])
def test_an_unknown_id_in_tasks_is_exit_2_naming_it(tiny_run, tmp_path, capsys, command):
    submission, data = tiny_run
    out_dir = tmp_path / "out"
    argv = [a.format(submission=submission, out=out_dir) for a in command] + ["--data", data, "--tasks", "aa, zz,b*,q*"]
    if command[0] in ("trm", "baseline", "plan"):
        argv += ["--out", str(out_dir)]
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err == f"error: {data}: no task matches zz, q*\n"
    assert not out_dir.exists()


@pytest.mark.parametrize("argv", [["data", "stats"], ["data", "stats", "--data", "x", "--limit", "0"]])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
