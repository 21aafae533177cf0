"""`hybrid-arc sandbox run`: the program report as JSON, bad input exit 2 with one line."""

from __future__ import annotations

import json

from hybrid_pipeline.cli import main

ROTATE_180 = "def transform(grid):\n    return [row[::-1] for row in grid[::-1]]\n"


def test_report_for_a_correct_program(tmp_path, capsys):
    program = tmp_path / "rotate.py"
    program.write_text(ROTATE_180)
    assert main(["sandbox", "run", "--program", str(program), "--data", "arc-agi-1:training",
                 "--task", "3c9b0459"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task_id"] == "3c9b0459" and report["all_train_exact"] is True
    assert [pair["status"] for pair in report["train"]] == ["exact"] * 4
    assert report["train"][0]["output"] == [[1, 8, 2], [2, 1, 2], [1, 2, 2]]


def test_a_crashing_program_is_reported_not_raised(tmp_path, capsys):
    program = tmp_path / "crash.py"
    program.write_text("def transform(grid):\n    return 1 / 0\n")
    assert main(["sandbox", "run", "--program", str(program), "--data", "arc-agi-1:training",
                 "--task", "3c9b0459"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {pair["status"] for pair in report["train"]} == {"exception"}
    assert report["train"][0]["error_type"] == "ZeroDivisionError"


def test_missing_program_and_unknown_task_exit_2_with_one_line(tmp_path, capsys):
    assert main(["sandbox", "run", "--program", str(tmp_path / "nope.py"), "--data", "arc-agi-1:training",
                 "--task", "3c9b0459"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.py" in err[0]
    program = tmp_path / "rotate.py"
    program.write_text(ROTATE_180)
    assert main(["sandbox", "run", "--program", str(program), "--data", "arc-agi-1:training", "--task", "zzz"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "zzz" in err[0]
