"""Run untrusted candidate programs (Python source defining ``transform(grid) -> grid``) in a sandbox.

Each run is a separate interpreter (``python -I -B``, stripped environment, a fresh temporary
directory as cwd) that runs the program on every grid and reports one result per grid:

  - "returned" (a valid grid, not compared), which `check_program` turns into "exact" or
    "wrong_output" (with the shape and a capped cell diff) against the train outputs;
  - "exception" (type, message, program line), "timeout", "memory_exceeded", "invalid_output" (the
    return value is not a grid; the message says why), "crashed" (the interpreter died, e.g.
    ``os._exit`` or a segfault).

Limits, enforced in the child before the program runs: wall clock per grid (an interval timer in
the child, and the parent kills the process group when a result is late), address space
(RLIMIT_AS: it includes the interpreter and numpy, about 100 MB), file size (RLIMIT_FSIZE), no core
files, CPU time as a backstop, RLIMIT_NPROC 0 (no fork or threads for a non-root user). Where
`unshare` can create a network namespace, the child runs in an empty one (no interface but a down
loopback); that is a kernel boundary. On top, a Python audit hook (PEP 578) in the child denies:
sockets, fork/exec/spawn/system/subprocess, signals to other processes, ctypes, sub-interpreters,
code-object construction, gc introspection, raising rlimits, symlinks and hard links, importing the
project's packages, opening directories, reading outside the temporary directory and the Python
installation (stdlib, site-packages, minus the project's packages), and any write, rename, delete
or chmod outside the temporary directory. A denied operation raises PermissionError in the program
before anything happens, so it is reported as "exception".

What this does not stop, honestly: an audit hook is not a security boundary (PEP 578 says so).
Native code reached through a memory-safety bug in CPython or a C extension (numpy included), or
crafted bytecode from `marshal.loads` (allowed: the import system needs it), runs without hooks.
The program shares the child interpreter with the harness, so it can forge its own results; that
only misreports its own outputs, since the child never sees an expected output, and the parent
re-validates every result. When the parent runs as root, RLIMIT_NPROC does not apply (fork is then
denied by the hook alone), and without a network namespace, network access is denied by the hook
alone. The program can read the Python installation, fill the temporary directory with many files
up to the size limit each, and use the CPU for its time limit. For code from an adversary rather
than a model, run this inside a container or VM (seccomp, no network, read-only root).
Linux only (resource limits and namespaces).
"""

from __future__ import annotations

import functools
import json
import math
import os
import selectors
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hybrid_pipeline.arc.errors import ARCDataError
from hybrid_pipeline.arc.errors import Problem as DataProblem
from hybrid_pipeline.arc.tasks import Task, load_tasks
from verifier.grid_verifier import GridDiff, as_grid, diff_problem, grid_diff
from verifier.verdict import Problem, Verdict

DEFAULT_TIME_LIMIT_S = 2.0
DEFAULT_MEMORY_LIMIT_MB = 512
FILE_LIMIT_MB = 16
# Interpreter and numpy start-up before the first result; generous because the machine may be busy.
STARTUP_TIMEOUT_S = 30.0
# Slack past the child's own timer before the parent kills it (the timer reports a cleaner result).
KILL_GRACE_S = 1.0
MAX_RESULT_LINE_BYTES = 1 << 20
MAX_MESSAGE_CHARS = 500

RETURNED, EXACT, WRONG_OUTPUT = "returned", "exact", "wrong_output"
EXCEPTION, TIMEOUT, MEMORY_EXCEEDED = "exception", "timeout", "memory_exceeded"
INVALID_OUTPUT, CRASHED = "invalid_output", "crashed"
STATUSES = (RETURNED, EXACT, WRONG_OUTPUT, EXCEPTION, TIMEOUT, MEMORY_EXCEEDED, INVALID_OUTPUT, CRASHED)
_CHILD_STATUSES = (RETURNED, EXCEPTION, TIMEOUT, MEMORY_EXCEEDED, INVALID_OUTPUT)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): e.g. the child interpreter could not start."""


# --------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class PairResult:
    """What the program did on one grid. `output` is the returned grid as lists (status returned,
    exact or wrong_output); `diff` is set for wrong_output; `line` is the program line of an exception."""

    index: int
    status: str
    output: list[list[int]] | None = None
    seconds: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    line: int | None = None
    diff: GridDiff | None = None

    @property
    def grid(self) -> np.ndarray | None:
        return None if self.output is None else np.array(self.output, dtype=np.uint8)

    def to_dict(self) -> dict:
        return {"index": self.index, "status": self.status, "output": self.output, "seconds": self.seconds,
                "error_type": self.error_type, "error_message": self.error_message, "line": self.line,
                "diff": None if self.diff is None else self.diff.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> PairResult:
        diff = data.get("diff")
        return cls(int(data["index"]), data["status"], data.get("output"), data.get("seconds"),
                   data.get("error_type"), data.get("error_message"), data.get("line"),
                   None if diff is None else GridDiff.from_dict(diff))


@dataclass(frozen=True)
class ProgramReport:
    """A program checked on a task: train pairs compared with their outputs, test inputs only run.

    `test` statuses are "returned" (or a failure) and never compared: the report is what a solver
    may see. `score_test_outputs` compares them for scoring and reports.
    """

    task_id: str
    train: tuple[PairResult, ...]
    test: tuple[PairResult, ...]
    time_limit_s: float
    memory_limit_mb: int
    network_namespace: bool
    seconds: float
    test_scored: bool = False

    @property
    def n_train_exact(self) -> int:
        return sum(r.status == EXACT for r in self.train)

    @property
    def all_train_exact(self) -> bool:
        return self.n_train_exact == len(self.train)

    def test_outputs(self) -> list[np.ndarray | None]:
        """The program's answer for each test input (None where it gave none): candidates."""
        return [r.grid for r in self.test]

    def to_dict(self) -> dict:
        return {
            "task_id": self.task_id,
            "all_train_exact": self.all_train_exact,
            "train_exact": self.n_train_exact,
            "train_pairs": len(self.train),
            "train": [r.to_dict() for r in self.train],
            "test": [r.to_dict() for r in self.test],
            "test_scored": self.test_scored,
            "limits": {"time_limit_s": self.time_limit_s, "memory_limit_mb": self.memory_limit_mb},
            "isolation": {"network_namespace": self.network_namespace},
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ProgramReport:
        return cls(data["task_id"], tuple(PairResult.from_dict(r) for r in data["train"]),
                   tuple(PairResult.from_dict(r) for r in data["test"]),
                   float(data["limits"]["time_limit_s"]), int(data["limits"]["memory_limit_mb"]),
                   bool(data["isolation"]["network_namespace"]), float(data["seconds"]),
                   bool(data.get("test_scored", False)))


# --------------------------------------------------------------------------------------------------
# Public entry points


def run_program(source: str, grids: Sequence[np.ndarray], *, time_limit_s: float = DEFAULT_TIME_LIMIT_S,
                memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB, as_numpy: bool = False) -> list[PairResult]:
    """Run `source`'s ``transform`` on each grid in the sandbox; one PairResult per grid, in order.

    The program gets each grid as a list of lists of ints (a uint8 numpy array with `as_numpy`).
    `time_limit_s` applies to each grid (and to running the program's top level once);
    `memory_limit_mb` is the child's whole address space. Statuses are "returned" or a failure;
    nothing is compared here. A grid that hangs or crashes the interpreter costs only that grid:
    the remaining grids run in a fresh interpreter.
    """
    if not isinstance(source, str):
        raise TypeError(f"program source must be str, got {type(source).__name__}")
    if not time_limit_s > 0:
        raise ValueError(f"time_limit_s must be positive, got {time_limit_s}")
    if not memory_limit_mb >= 64:
        raise ValueError(f"memory_limit_mb must be at least 64 (the interpreter needs ~100), got {memory_limit_mb}")
    if sys.platform != "linux":
        raise SandboxError(f"the sandbox needs Linux (resource limits, namespaces); this is {sys.platform}")
    payload = [np.asarray(g).astype(int).tolist() for g in grids]
    if any(np.ndim(g) != 2 for g in payload):
        raise ValueError("every grid must be 2-D")
    limits = _Limits(float(time_limit_s), int(memory_limit_mb), as_numpy)
    results: dict[int, PairResult] = {}
    pending = list(range(len(payload)))
    while pending:
        settled = _run_child(source, payload, pending, limits)
        results.update(settled)
        pending = [i for i in pending if i not in results]
    return [results[i] for i in range(len(payload))]


def check_program(source: str, task: Task, *, time_limit_s: float = DEFAULT_TIME_LIMIT_S,
                  memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB, include_test: bool = True,
                  as_numpy: bool = False) -> ProgramReport:
    """Run the program on the task's train inputs (and test inputs) and compare the train outputs.

    Test inputs are run so their outputs can be candidates; test outputs are never read.
    """
    start = time.monotonic()
    inputs = [ex.input for ex in task.train] + ([ex.input for ex in task.test] if include_test else [])
    results = run_program(source, inputs, time_limit_s=time_limit_s, memory_limit_mb=memory_limit_mb,
                          as_numpy=as_numpy)
    n_train = len(task.train)
    train = tuple(_compare(r, ex.output) for r, ex in zip(results[:n_train], task.train))
    test = tuple(_reindex(r, i) for i, r in enumerate(results[n_train:]))
    return ProgramReport(task.id, train, test, float(time_limit_s), int(memory_limit_mb),
                         bool(_network_namespace_prefix()), round(time.monotonic() - start, 3))


def score_test_outputs(report: ProgramReport, task: Task) -> ProgramReport:
    """The report with test results compared to the task's known test outputs.

    For scoring and reports only (the CLI): solvers and the planner must not call this, it reads
    the expected test outputs. Tasks without solutions come back unchanged.
    """
    if not task.has_solutions or len(task.test) != len(report.test):
        return report
    test = tuple(_compare(r, ex.output) for r, ex in zip(report.test, task.test))
    return ProgramReport(report.task_id, report.train, test, report.time_limit_s, report.memory_limit_mb,
                         report.network_namespace, report.seconds, test_scored=True)


def program_report_json(program_path: str | os.PathLike, data_spec: str, task_id: str, *,
                        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
                        memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB) -> dict:
    """What ``hybrid-arc sandbox run --program FILE --data SPEC --task ID`` prints, as a dict.

    Test outputs are scored when the data has solutions ("test_scored": true). Raises ARCDataError
    (exit 2) for an unreadable program file, a data spec that does not load, a task id that is not
    there, or limits out of range; SandboxError (exit 1) when the sandbox itself fails.
    """
    path = Path(program_path)
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ARCDataError(DataProblem(f"program is not UTF-8 text ({e.reason} at byte {e.start})",
                                       file=str(path))) from None
    except OSError as e:
        raise ARCDataError(DataProblem(f"cannot read program: {e.strerror}", file=str(path))) from None
    if not time_limit_s > 0 or not memory_limit_mb >= 64:
        raise ARCDataError(DataProblem(f"limits out of range: time limit {time_limit_s} s (expected > 0), "
                                       f"memory {memory_limit_mb} MB (expected >= 64)"))
    task = _load_one_task(data_spec, task_id)
    report = check_program(source, task, time_limit_s=time_limit_s, memory_limit_mb=memory_limit_mb)
    out = score_test_outputs(report, task).to_dict()
    out["program"] = str(path)
    out["data"] = data_spec
    return out


def _load_one_task(data_spec: str, task_id: str) -> Task:
    result = load_tasks(data_spec)
    task = next((t for t in result.tasks if t.id == task_id), None)
    if task is not None:
        return task
    # Problems about this task (it failed validation) or about the whole spec explain the absence.
    related = [p for p in result.problems if p.task_id in (task_id, None)]
    if related:
        raise ARCDataError(related)
    raise ARCDataError(DataProblem(f"no task with id '{task_id}' ({len(result.tasks)} tasks loaded)",
                                   file=data_spec, task_id=task_id))


# --------------------------------------------------------------------------------------------------
# Reports -> verifier problems


def program_problems(report: ProgramReport) -> list[Problem]:
    """One Problem per train pair that is not exact and per test input the program failed on.

    Kinds: "program_wrong_output" (expected/got shape and differing cells), "program_exception",
    "program_timeout", "program_memory_exceeded", "program_invalid_output", "program_crashed".
    """
    problems = []
    for split, results in (("train", report.train), ("test", report.test)):
        for r in results:
            if r.status in (EXACT, RETURNED):
                continue
            problems.append(_pair_problem(f"{split} {r.index}", r, report))
    return problems


def program_verdict(report: ProgramReport) -> Verdict:
    """Verdict on a program: ok when every train pair is exact and every test input gave a grid;
    score is the fraction of train pairs solved exactly."""
    problems = program_problems(report)
    score = report.n_train_exact / len(report.train) if report.train else 0.0
    return Verdict(not problems, round(score, 6), tuple(problems))


def _pair_problem(where: str, r: PairResult, report: ProgramReport) -> Problem:
    kind = f"program_{r.status}"
    if r.status == WRONG_OUTPUT and r.diff is not None:
        return diff_problem(kind, where, r.diff)
    if r.status == EXCEPTION:
        at = f" at line {r.line}" if r.line is not None else ""
        return Problem(kind, where, expected="a returned grid", got=f"{r.error_type}: {r.error_message}",
                       detail=f"raised {r.error_type}{at}: {r.error_message}")
    if r.status == TIMEOUT:
        return Problem(kind, where, expected=f"at most {report.time_limit_s} s", got="no result in time",
                       detail=r.error_message or "")
    if r.status == MEMORY_EXCEEDED:
        return Problem(kind, where, expected=f"at most {report.memory_limit_mb} MB", got="MemoryError",
                       detail=r.error_message or "")
    if r.status == INVALID_OUTPUT:
        return Problem(kind, where, expected="a grid: 1-30 rows of 1-30 ints 0..9", got=r.error_message,
                       detail=r.error_message or "")
    return Problem(kind, where, expected="a returned grid", got=r.error_message, detail=r.error_message or "")


def _compare(r: PairResult, expected: np.ndarray) -> PairResult:
    if r.status != RETURNED:
        return r
    diff = grid_diff(expected, r.grid)
    if diff.equal:
        return PairResult(r.index, EXACT, r.output, r.seconds)
    return PairResult(r.index, WRONG_OUTPUT, r.output, r.seconds, diff=diff)


def _reindex(r: PairResult, index: int) -> PairResult:
    return PairResult(index, r.status, r.output, r.seconds, r.error_type, r.error_message, r.line, r.diff)


# --------------------------------------------------------------------------------------------------
# Isolation settings computed in the parent


@dataclass(frozen=True)
class _Limits:
    time_limit_s: float
    memory_limit_mb: int
    as_numpy: bool


@functools.lru_cache(maxsize=1)
def _network_namespace_prefix() -> tuple[str, ...]:
    """Command prefix that runs the child in an empty network namespace, or () where none can be made.

    Root can unshare directly; other users need a user namespace (``--map-root-user``), which some
    systems disable. Probed once per process.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for prefix in ((unshare, "--net", "--"), (unshare, "--map-root-user", "--net", "--")):
        try:
            probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return prefix
    return ()


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@functools.lru_cache(maxsize=1)
def _project_packages() -> tuple[str, ...]:
    """Top-level names of this project's code: the program may not import them."""
    names = {"hybrid_pipeline", "verifier", "planner", "adapters", "experiments", "tests", "conftest"}
    for entry in PROJECT_ROOT.iterdir():
        if (entry / "__init__.py").is_file():
            names.add(entry.name)
    return tuple(sorted(names))


@functools.lru_cache(maxsize=1)
def _read_roots() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(directories the program may read: the Python installation; prefixes it may not read in them).

    Roots that contain the project are dropped (the venv may sit inside the project; the project
    may not sit inside a root). Installed copies of the project's packages are denied.
    """
    paths = sysconfig.get_paths()
    candidates = [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths]
    candidates += site.getsitepackages()
    roots = []
    for p in candidates:
        real = os.path.realpath(p)
        if os.path.isdir(real) and not _is_under(str(PROJECT_ROOT), real) and real not in roots:
            roots.append(real)
    denied = tuple(os.path.join(root, name) for root in roots for name in _project_packages())
    return tuple(roots), denied


def _child_env(tmp: str) -> dict[str, str]:
    # Nothing inherited: no tokens, proxies or PYTHON* variables reach the program.
    return {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --------------------------------------------------------------------------------------------------
# One child interpreter


def _run_child(source: str, payload: list, indices: list[int], limits: _Limits) -> dict[int, PairResult]:
    """Run the program on `payload[i]` for i in `indices`; returns a result for at least the first."""
    read_roots, denied_reads = _read_roots()
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="hybrid-arc-sandbox-"))
    config = {
        "source": source,
        "grids": [payload[i] for i in indices],
        "time_limit_s": limits.time_limit_s,
        "memory_bytes": limits.memory_limit_mb << 20,
        "file_bytes": FILE_LIMIT_MB << 20,
        "cpu_seconds": int(math.ceil(limits.time_limit_s * (len(indices) + 1))) + 10,
        "as_numpy": limits.as_numpy,
        "tmp": tmp,
        "read_roots": list(read_roots),
        "denied_reads": list(denied_reads),
        "denied_modules": list(_project_packages()),
    }
    cmd = [*_network_namespace_prefix(), sys.executable, "-I", "-B", "-c", _CHILD_SOURCE]
    # Config and stderr go through anonymous files: nothing of the parent's lands in the program's cwd.
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stderr:
        stdin.write(json.dumps(config).encode())
        stdin.seek(0)
        try:
            proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, cwd=tmp,
                                    env=_child_env(tmp), start_new_session=True, close_fds=True)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SandboxError(f"cannot start the sandbox interpreter {sys.executable}: {e}") from e
        reader = _LineReader(proc.stdout)
        try:
            return _collect(proc, reader, indices, limits, stderr)
        finally:
            reader.selector.close()
            _kill(proc)
            proc.stdout.close()
            shutil.rmtree(tmp, ignore_errors=True)


class _LineReader:
    """Newline-delimited JSON from the child's stdout, each line awaited until a deadline."""

    def __init__(self, stream):
        self.fd = stream.fileno()
        self.buffer = b""
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)

    def next(self, deadline: float) -> dict | str:
        """The next message, or "timeout", "eof" or "garbled" (not a JSON object, or too long)."""
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            if not self.selector.select(remaining):
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return "eof"
            self.buffer += chunk
            if len(self.buffer) > MAX_RESULT_LINE_BYTES and b"\n" not in self.buffer:
                return "garbled"
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "garbled"
        return message if isinstance(message, dict) else "garbled"


def _collect(proc: subprocess.Popen, reader: _LineReader, indices: list[int], limits: _Limits,
             stderr) -> dict[int, PairResult]:
    step = limits.time_limit_s + KILL_GRACE_S

    message = reader.next(time.monotonic() + STARTUP_TIMEOUT_S)
    if not (isinstance(message, dict) and message.get("event") == "started"):
        _kill(proc)
        raise SandboxError(f"the sandbox interpreter did not start ({_describe_end(proc, message)}); "
                           f"its stderr ends with: {_tail(stderr)}")

    # Loading the program (its top level) may fail; then every grid fails the same way.
    message = reader.next(time.monotonic() + step)
    if isinstance(message, dict) and message.get("event") == "load_failed":
        failed = _child_result(0, message)
        return {i: _reindex(failed, i) for i in indices}
    if not (isinstance(message, dict) and message.get("event") == "ready"):
        failed = _death(proc, message, limits, "while running the program's top level")
        return {i: _reindex(failed, i) for i in indices}

    settled: dict[int, PairResult] = {}
    for position, index in enumerate(indices):
        message = reader.next(time.monotonic() + step)
        if isinstance(message, dict) and message.get("index") == position:
            settled[index] = _reindex(_child_result(position, message), index)
            continue
        # Late, dead, or talking nonsense: this grid fails; the rest get a fresh interpreter.
        settled[index] = _reindex(_death(proc, message, limits, f"on grid {position}"), index)
        break
    return settled


def _child_result(index: int, message: dict) -> PairResult:
    """A result line from the child, re-validated: the program shares the child and can forge lines."""
    status = message.get("status")
    seconds = message.get("seconds")
    seconds = round(float(seconds), 4) if isinstance(seconds, (int, float)) else None
    if status not in _CHILD_STATUSES:
        return PairResult(index, CRASHED, error_message=f"unexpected status {str(status)[:40]!r} from the sandbox")
    if status == RETURNED:
        grid, problems = as_grid(message.get("output"))
        if problems:
            return PairResult(index, INVALID_OUTPUT, seconds=seconds, error_message=problems[0].detail)
        return PairResult(index, RETURNED, grid.tolist(), seconds)
    line = message.get("line")
    return PairResult(index, status, seconds=seconds, error_type=_text(message.get("error_type"), 80),
                      error_message=_text(message.get("error_message"), MAX_MESSAGE_CHARS),
                      line=line if isinstance(line, int) else None)


def _death(proc: subprocess.Popen, message: Any, limits: _Limits, when: str) -> PairResult:
    """Result for a grid whose child was late (killed), died, or wrote garbage."""
    if message == "timeout":
        _kill(proc)
        return PairResult(0, TIMEOUT, error_message=f"no result within {limits.time_limit_s} s {when}; killed")
    _kill(proc)
    return PairResult(0, CRASHED, error_message=f"{_describe_end(proc, message)} {when}")


def _describe_end(proc: subprocess.Popen, message: Any) -> str:
    if message == "garbled" or isinstance(message, dict):
        return "the program wrote to the sandbox's result channel"
    if message == "timeout":
        return "no answer in time"
    code = proc.wait()
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the interpreter was killed by {name}"
    return f"the interpreter exited with code {code} before reporting"


def _kill(proc: subprocess.Popen) -> None:
    # The whole session: anything the program managed to start dies with it.
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


def _tail(stream, n: int = 2000) -> str:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - n))
    return stream.read().decode("utf-8", "replace").strip() or "(nothing)"


def _text(value: Any, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]


# --------------------------------------------------------------------------------------------------
# The child: a standalone script (it cannot import the project). Runs as ``python -I -B -c``.

_CHILD_SOURCE = r'''
import json, os, resource, signal, sys, time
import numpy  # before the limits: numpy maps its libraries and sizes its buffers at import


class _Timeout(BaseException):
    """Raised by the interval timer; a BaseException so `except Exception` in the program misses it."""


def _on_alarm(signum, frame):
    raise _Timeout()


class _Discard:
    def write(self, text):
        return len(text)

    def flush(self):
        pass


def _set_limits(config):
    memory, size, cpu = config["memory_bytes"], config["file_bytes"], config["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # not enforced for root; the hook covers fork
    # Writing past the size limit then fails with an OSError instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _on_alarm)


def _make_hook(tmp, read_roots, denied_reads, denied_modules):
    """The audit hook. Everything it uses is bound here, so the program cannot patch it afterwards
    (e.g. replacing os.path.realpath or builtins.len would otherwise change its decisions)."""
    stat, lstat, readlink, getcwd = os.stat, os.lstat, os.readlink, os.getcwd
    str_join, str_split, str_startswith = str.join, str.split, str.startswith
    bytes_decode, int_and = bytes.decode, int.__and__
    # st_mode by position: the program could patch os.stat_result's attributes, not tuple indexing.
    field = tuple.__getitem__
    _isinstance, _len, _tuple, _frozenset, _any = isinstance, len, tuple, frozenset, any
    _str, _bytes, _int = str, bytes, int
    Denied = PermissionError
    read_roots, denied_reads = _tuple(read_roots), _tuple(denied_reads)
    denied_modules = _frozenset(denied_modules)
    devices = _frozenset(("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"))
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    deny_always = (
        "socket.", "ctypes.", "subprocess.", "os.fork", "os.posix_spawn", "os.spawn", "os.exec",
        "os.system", "os.kill", "os.killpg", "signal.pthread_kill", "pty.", "os.symlink", "os.link",
        "resource.setrlimit", "resource.prlimit", "gc.get_referrers", "gc.get_referents", "gc.get_objects",
        "code.__new__", "cpython.PyInterpreterState_New", "sqlite3.enable_load_extension",
        "sqlite3.load_extension", "os.setns", "os.unshare", "webbrowser.open", "os.startfile",
        "_winapi.", "msvcrt.", "winreg.",
    )
    path_writes = _frozenset((
        "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
        "os.utime", "os.chflags", "os.lchflags", "os.lchmod", "os.chdir", "os.mkfifo", "os.mknod",
        "sqlite3.connect",
    ))
    path_reads = _frozenset(("os.listdir", "os.scandir"))

    def plain(path):
        """Exact str of a path argument; other objects (PathLike) could answer differently each call."""
        if _isinstance(path, _str):
            return str_join("", [path])  # a new exact str, even from a str subclass
        if _isinstance(path, _bytes):
            return bytes_decode(path, "utf-8", "surrogateescape")
        raise Denied("sandbox: paths must be str or bytes")

    def resolve(path):
        """Absolute path with every symlink resolved (the program cannot create new ones)."""
        if not str_startswith(path, "/"):
            path = getcwd() + "/" + path
        pending = [p for p in str_split(path, "/") if p and p != "."]
        done = []
        hops = 0
        while pending:
            name = pending.pop(0)
            if name == "..":
                if done:
                    done.pop()
                continue
            candidate = "/" + str_join("/", done + [name])
            try:
                mode = field(lstat(candidate), 0)
            except (OSError, ValueError):
                done.append(name)
                continue
            if mode & 0o170000 == 0o120000:
                hops += 1
                if hops > 40:
                    raise Denied("sandbox: too many symbolic links")
                target = readlink(candidate)
                if str_startswith(target, "/"):
                    done = []
                pending = [p for p in str_split(target, "/") if p and p != "."] + pending
            else:
                done.append(name)
        return "/" + str_join("/", done)

    def under(path, root):
        return path == root or str_startswith(path, root + "/")

    def is_dir(path):
        try:
            return field(stat(path), 0) & 0o170000 == 0o040000
        except (OSError, ValueError):
            return False

    def check_write(path):
        real = resolve(plain(path))
        if not (under(real, tmp) or real in devices):
            raise Denied(f"sandbox: writing {real} is not allowed (outside the temporary directory)")
        return real

    def check_read(path):
        real = resolve(plain(path))
        if under(real, tmp) or real in devices:
            return real
        if _any(under(real, root) for root in read_roots) and not _any(under(real, d) for d in denied_reads):
            return real
        raise Denied(f"sandbox: reading {real} is not allowed (outside the temporary directory)")

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if _isinstance(path, _int):
                return  # an already-open descriptor; only allowed paths could have been opened
            # Flags by their C value: an int subclass could override `&`.
            writing = (_isinstance(mode, _str) and _any(c in plain(mode) for c in "wax+")) or (
                _isinstance(flags, _int) and int_and(flags, write_flags))
            real = check_write(path) if writing else check_read(path)
            if is_dir(real):
                # Directory descriptors would let later dir_fd-relative calls escape the path checks.
                raise Denied(f"sandbox: opening the directory {real} is not allowed")
        elif event == "import":
            name = plain(args[0])
            if str_split(name, ".")[0] in denied_modules or name == "_posixsubprocess":
                raise Denied(f"sandbox: importing {name} is not allowed")
        elif event in path_writes:
            for arg in args:
                if _isinstance(arg, (_str, _bytes)):
                    check_write(arg)
        elif event in path_reads:
            path = args[0] if _len(args) else None
            if path is not None and not _isinstance(path, _int):
                check_read(path)
        elif str_startswith(event, deny_always):
            raise Denied(f"sandbox: {event} is not allowed")

    return hook


def _error_fields(error):
    try:
        message = str(error)
    except BaseException:
        message = "(unprintable message)"
    line = getattr(error, "lineno", None) if isinstance(error, SyntaxError) else None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<program>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return {"error_type": type(error).__name__, "error_message": message[:500],
            "line": line if isinstance(line, int) else None}


def _failure(error, limit):
    if isinstance(error, _Timeout):
        return {"status": "timeout", "error_type": None, "line": None,
                "error_message": f"ran longer than {limit} s"}
    if isinstance(error, MemoryError):
        return {"status": "memory_exceeded", **_error_fields(error),
                "error_message": "MemoryError: allocation beyond the memory limit"}
    return {"status": "exception", **_error_fields(error)}


def _cell(value):
    if isinstance(value, (bool, numpy.bool_)):
        return None
    if isinstance(value, (int, numpy.integer)):
        number = int(value)
    elif isinstance(value, (float, numpy.floating)) and float(value).is_integer():
        number = int(value)
    else:
        return None
    return number if 0 <= number <= 9 else None


def _as_grid(value):
    """(rows of ints, None) or (None, why the return value is not a grid)."""
    if isinstance(value, numpy.ndarray):
        if value.ndim != 2:
            return None, f"returned an array with {value.ndim} dimensions, expected 2"
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        return None, f"returned {type(value).__name__}, expected a grid (a list of rows)"
    if not 1 <= len(value) <= 30:
        return None, f"returned {len(value)} rows, expected 1 to 30"
    rows = []
    for r, row in enumerate(value):
        if isinstance(row, numpy.ndarray) and row.ndim == 1:
            row = row.tolist()
        if not isinstance(row, (list, tuple)):
            return None, f"row {r} is {type(row).__name__}, expected a list of ints"
        if not 1 <= len(row) <= 30:
            return None, f"row {r} has {len(row)} cells, expected 1 to 30"
        if rows and len(row) != len(rows[0]):
            return None, f"row {r} has {len(row)} cells, expected {len(rows[0])} (grid must be rectangular)"
        cells = [_cell(v) for v in row]
        if None in cells:
            c = cells.index(None)
            return None, f"row {r} col {c} is {repr(row[c])[:30]}, expected an int 0..9"
        rows.append(cells)
    return rows, None


def _timed(limit, function, *args):
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return function(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _run_one(transform, grid, config):
    argument = numpy.array(grid, dtype=numpy.uint8) if config["as_numpy"] else [list(row) for row in grid]
    limit = config["time_limit_s"]
    start = time.perf_counter()
    try:
        rows, why = _timed(limit, lambda: _as_grid(transform(argument)))
    except BaseException as error:
        return {**_failure(error, limit), "seconds": time.perf_counter() - start}
    seconds = time.perf_counter() - start
    if why is not None:
        return {"status": "invalid_output", "error_message": why, "seconds": seconds}
    return {"status": "returned", "output": rows, "seconds": seconds}


def main():
    config = json.loads(sys.stdin.buffer.read())
    results = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")

    def send(message):
        results.write(json.dumps(message) + "\n")

    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    roots = config["read_roots"]
    # Drops the project (an editable install puts it on sys.path); the hook would deny it anyway.
    sys.path[:] = [p for p in sys.path
                   if any(os.path.realpath(p) == r or os.path.realpath(p).startswith(r + "/") for r in roots)]
    _set_limits(config)
    sys.addaudithook(_make_hook(config["tmp"], roots, config["denied_reads"], config["denied_modules"]))
    send({"event": "started"})

    namespace = {"__name__": "__program__", "__builtins__": __builtins__}
    limit = config["time_limit_s"]
    sys.stdout = sys.stderr = _Discard()
    try:
        _timed(limit, exec, compile(config.pop("source"), "<program>", "exec"), namespace)
        transform = namespace.get("transform")
        if not callable(transform):
            raise NameError("the program does not define a function transform(grid)")
    except BaseException as error:
        send({"event": "load_failed", **_failure(error, limit)})
        os._exit(0)
    send({"event": "ready"})
    for index, grid in enumerate(config.pop("grids")):
        send({"index": index, **_run_one(transform, grid, config)})
    # Skip atexit handlers and finalizers the program may have registered.
    os._exit(0)


main()
'''
