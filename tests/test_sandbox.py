import json
import time
from pathlib import Path

import numpy as np
import pytest

from hybrid_pipeline.arc.errors import ARCDataError
from hybrid_pipeline.arc.tasks import Example, Task, load_tasks
from verifier import ProgramReport, check_program, program_problems, program_report_json, program_verdict, run_program

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ROTATE_180 = "3c9b0459"  # output = input rotated by 180 degrees
RECOLOUR = "b1948b0a"  # output = input with colour 6 replaced by 2

SOLVE_ROTATE_180 = """
def transform(grid):
    # rotate by 180 degrees: reverse the rows and each row
    return [row[::-1] for row in grid[::-1]]
"""

IDENTITY = "def transform(grid):\n    return grid\n"
GRIDS = [np.array([[1, 2], [3, 4]]), np.array([[5]])]


@pytest.fixture(scope="module")
def tasks():
    loaded = load_tasks("arc-agi-1:training", ids=[ROTATE_180, RECOLOUR]).raise_if_problems().tasks
    return {t.id: t for t in loaded}


def run_one(source, grid=GRIDS[0], **limits):
    (result,) = run_program(source, [grid], **limits)
    return result


# ---------------------------------------------------------------------------------------------
# Outcomes on real tasks


def test_a_correct_program_solves_every_train_pair_of_a_real_task(tasks):
    task = tasks[ROTATE_180]
    report = check_program(SOLVE_ROTATE_180, task)
    assert [r.status for r in report.train] == ["exact"] * len(task.train)
    assert report.all_train_exact and program_verdict(report).score == 1.0
    # Test inputs are run, not compared: the report is what a solver may see.
    assert [r.status for r in report.test] == ["returned"]
    np.testing.assert_array_equal(report.test_outputs()[0], task.test[0].output)
    assert program_problems(report) == []


def test_a_wrong_program_gets_wrong_output_with_the_differing_cells(tasks):
    task = tasks[RECOLOUR]
    report = check_program(IDENTITY, task)
    first = report.train[0]
    assert first.status == "wrong_output"
    sixes = np.argwhere(task.train[0].input == 6)
    assert first.diff.n_cells == len(sixes)
    assert first.diff.expected_shape == first.diff.got_shape == task.train[0].output.shape
    r, c = sixes[0]
    assert first.diff.cells[0] == (r, c, 2, 6)  # (row, col, expected, got)
    problem = program_problems(report)[0]
    assert (problem.kind, problem.where) == ("program_wrong_output", "train 0")
    assert problem.expected["cells"][0] == [r, c, 2] and problem.got["cells"][0] == [r, c, 6]
    assert program_verdict(report).score == 0.0


def test_a_wrong_shape_is_reported_as_shapes(tasks):
    report = check_program("def transform(grid):\n    return [[0]]\n", tasks[RECOLOUR])
    diff = report.train[0].diff
    assert diff.got_shape == (1, 1) and diff.n_cells == 0 and diff.cells == ()
    assert program_problems(report)[0].detail.startswith("shape 1x1, expected")


def test_check_program_never_reads_test_outputs(tasks):
    task = tasks[ROTATE_180]

    class Sealed(Example):
        def __getattribute__(self, name):
            if name == "output":
                raise AssertionError("the sandbox read a test output")
            return super().__getattribute__(name)

    sealed = Task(task.id, task.train, tuple(Sealed(ex.input, ex.output) for ex in task.test))
    report = check_program(SOLVE_ROTATE_180, sealed)
    assert report.all_train_exact and report.test[0].status == "returned"


# ---------------------------------------------------------------------------------------------
# Failures


def test_an_exception_is_reported_with_type_message_and_line():
    result = run_one("def transform(grid):\n    x = 1\n    return grid[99]\n")
    assert (result.status, result.error_type, result.line) == ("exception", "IndexError", 3)
    assert result.error_message == "list index out of range"


@pytest.mark.parametrize("source, error_type", [
    ("def transform(grid)\n    return grid\n", "SyntaxError"),
    ("x = 1\n", "NameError"),  # no transform
    ("raise RuntimeError('at import')\ndef transform(grid):\n    return grid\n", "RuntimeError"),
])
def test_a_program_that_does_not_load_fails_every_grid_the_same_way(source, error_type):
    results = run_program(source, GRIDS)
    assert [(r.status, r.error_type) for r in results] == [("exception", error_type)] * 2


def test_an_infinite_loop_times_out_within_the_limit():
    start = time.monotonic()
    result = run_one("def transform(grid):\n    while True:\n        pass\n", time_limit_s=0.5)
    assert result.status == "timeout"
    assert time.monotonic() - start < 0.5 + 2.5  # limit + interpreter start-up and slack


def test_a_program_that_swallows_the_timeout_is_killed_and_the_next_grid_still_runs():
    source = """
import time
def transform(grid):
    while grid[0][0] == 1:
        try:
            time.sleep(100)
        except BaseException:  # catches the sandbox's own timeout signal
            pass
    return grid
"""
    start = time.monotonic()
    results = run_program(source, GRIDS, time_limit_s=0.5)
    assert [r.status for r in results] == ["timeout", "returned"]
    assert "killed" in results[0].error_message
    assert time.monotonic() - start < 0.5 + 1.0 + 4.0  # limit + kill grace + two start-ups and slack


@pytest.mark.parametrize("allocation", ["np.ones((10**5, 10**5))", "bytearray(8 << 30)"])
def test_a_huge_allocation_is_memory_exceeded(allocation):
    source = f"import numpy as np\ndef transform(grid):\n    data = {allocation}\n    return grid\n"
    result = run_one(source, memory_limit_mb=256)
    assert result.status == "memory_exceeded" and result.error_type == "MemoryError"


@pytest.mark.parametrize("returned, reason", [
    ("[[1, 2], [3]]", "row 1 has 1 cells, expected 2"),
    ("[[10]]", "row 0 col 0 is 10, expected an int 0..9"),
    ("'12\\n34'", "returned str"),
    ("None", "returned NoneType"),
    ("[]", "0 rows"),
    ("[[0] * 31]", "31 cells"),
    ("np.zeros((2, 2, 2))", "3 dimensions"),
])
def test_a_return_value_that_is_not_a_grid_is_invalid_output(returned, reason):
    result = run_one(f"import numpy as np\ndef transform(grid):\n    return {returned}\n")
    assert result.status == "invalid_output"
    assert reason in result.error_message


def test_numpy_results_and_numpy_inputs_are_accepted():
    assert run_one("import numpy as np\ndef transform(grid):\n    return np.zeros((2, 3))\n").output == [[0] * 3] * 2
    result = run_one("def transform(grid):\n    return grid.T\n", as_numpy=True)
    assert result.output == [[1, 3], [2, 4]]


def test_an_interpreter_that_dies_is_crashed_and_the_other_grids_still_run():
    source = "import os\ndef transform(grid):\n    if grid[0][0] == 1:\n        os._exit(3)\n    return grid\n"
    results = run_program(source, GRIDS)
    assert [r.status for r in results] == ["crashed", "returned"]
    assert "exited with code 3" in results[0].error_message


def test_printing_does_not_disturb_the_results():
    source = "import sys\ndef transform(grid):\n    print('{not json')\n    sys.__stdout__.write('x\\n')\n    return grid\n"
    assert run_one(source).output == [[1, 2], [3, 4]]


# ---------------------------------------------------------------------------------------------
# Containment: each attempt is denied before it happens and shows up as an exception


def test_the_program_can_use_its_own_temporary_directory():
    source = """
import os
def transform(grid):
    with open("scratch.txt", "w") as f:
        f.write("7")
    os.mkdir("sub")
    return [[int(open("scratch.txt").read())]]
"""
    assert run_one(source).output == [[7]]


def blocked(source):
    result = run_one(source)
    assert result.status == "exception", result
    assert result.error_type == "PermissionError" and result.error_message.startswith("sandbox:"), result
    return result


def test_opening_a_socket_is_blocked():
    blocked("import socket\ndef transform(grid):\n    socket.create_connection(('127.0.0.1', 9))\n")
    blocked("import socket\ndef transform(grid):\n    socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n")


def test_starting_processes_is_blocked(tmp_path):
    marker = tmp_path / "spawned"
    blocked("import os\ndef transform(grid):\n    os.fork()\n")
    blocked(f"import os\ndef transform(grid):\n    os.system('touch {marker}')\n")
    blocked(f"def transform(grid):\n    import subprocess\n    subprocess.run(['touch', '{marker}'])\n")
    blocked(f"import ctypes\ndef transform(grid):\n    ctypes.CDLL(None).system(b'touch {marker}')\n")
    assert not marker.exists()


def test_writing_outside_the_temporary_directory_is_blocked(tmp_path):
    target = tmp_path / "escaped.txt"
    result = blocked(f"def transform(grid):\n    open('{target}', 'w').write('x')\n")
    assert "outside the temporary directory" in result.error_message
    assert not target.exists()
    keep = tmp_path / "keep.txt"
    keep.write_text("keep")
    blocked(f"import os\ndef transform(grid):\n    os.remove('{keep}')\n")
    blocked(f"import os\ndef transform(grid):\n    os.symlink('{keep}', 'link')\n")
    assert keep.read_text() == "keep"


@pytest.mark.parametrize("path", [PROJECT_ROOT / "pyproject.toml", Path(__file__).resolve(), PROJECT_ROOT])
def test_reading_project_files_is_blocked(path):
    reader = "os.listdir" if path.is_dir() else "lambda p: open(p).read()"
    result = blocked(f"import os\ndef transform(grid):\n    return ({reader})('{path}')\n")
    assert str(path) in result.error_message


def test_importing_the_project_is_blocked():
    result = blocked("def transform(grid):\n    import hybrid_pipeline.arc.tasks\n    return grid\n")
    assert "hybrid_pipeline" in result.error_message


def test_patching_the_standard_library_does_not_weaken_the_checks():
    source = f"""
import builtins, os, posixpath
posixpath.realpath = os.path.realpath = lambda p, **k: '/tmp'
builtins.any = lambda items: True
def transform(grid):
    return open('{PROJECT_ROOT / "pyproject.toml"}').read()
"""
    blocked(source)


# ---------------------------------------------------------------------------------------------
# Reports and the CLI entry point


def test_reports_are_json_round_trippable(tasks):
    report = check_program("def transform(grid):\n    return grid[0][0] / 0\n", tasks[RECOLOUR])
    data = json.loads(json.dumps(report.to_dict()))
    assert ProgramReport.from_dict(data) == report
    problems = program_problems(report)
    assert {p.kind for p in problems} == {"program_exception"}
    assert [p.where for p in problems] == [f"train {i}" for i in range(3)] + ["test 0"]
    assert "ZeroDivisionError" in problems[0].got and "line 2" in problems[0].detail


def test_program_report_json_scores_test_outputs_for_the_cli(tmp_path):
    program = tmp_path / "rotate.py"
    program.write_text(SOLVE_ROTATE_180)
    out = program_report_json(program, "arc-agi-1:training", ROTATE_180)
    json.dumps(out)
    assert out["task_id"] == ROTATE_180 and out["all_train_exact"] and out["test_scored"]
    assert [r["status"] for r in out["test"]] == ["exact"]


def test_program_report_json_rejects_bad_input_with_arc_data_errors(tmp_path):
    with pytest.raises(ARCDataError, match="missing.py: cannot read program"):
        program_report_json(tmp_path / "missing.py", "arc-agi-1:training", ROTATE_180)
    program = tmp_path / "p.py"
    program.write_bytes(b"\xff\xfe def")
    with pytest.raises(ARCDataError, match="not UTF-8"):
        program_report_json(program, "arc-agi-1:training", ROTATE_180)
    program.write_text(IDENTITY)
    with pytest.raises(ARCDataError, match="task nope: no task with id 'nope'"):
        program_report_json(program, "arc-agi-1:training", "nope")
    with pytest.raises(ARCDataError, match="no such file or directory"):
        program_report_json(program, str(tmp_path / "no-data"), ROTATE_180)
