"""The sandbox's runner: untrusted programs (source defining ``transform(grid) -> grid``) on grids.

Each run is a separate interpreter (``python -I -B`` running `verifier.sandbox_child`, stripped
environment, a fresh temporary directory as cwd) that runs the program on every grid and reports
one result per grid:

  - "returned" (a valid grid, not compared), which `verifier.sandbox.check_program` turns into
    "exact" or "wrong_output" (with the shape and a capped cell diff) against the train outputs;
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
than a model, run this inside a container or virtual machine (seccomp, no network, read-only root).
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

from verifier.grid_verifier import as_grid
from verifier.program_report import (
    CRASHED,
    EXCEPTION,
    INVALID_OUTPUT,
    MEMORY_EXCEEDED,
    RETURNED,
    TIMEOUT,
    PairResult,
)

DEFAULT_TIME_LIMIT_S = 2.0
DEFAULT_MEMORY_LIMIT_MB = 512
FILE_LIMIT_MB = 16
# Interpreter and numpy start-up before the first result; generous because the machine may be busy.
STARTUP_TIMEOUT_S = 30.0
# Slack past the child's own timer before the parent kills it (the timer reports a cleaner result).
KILL_GRACE_S = 1.0
MAX_RESULT_LINE_BYTES = 1 << 20
MAX_MESSAGE_CHARS = 500
_CHILD_STATUSES = (RETURNED, EXCEPTION, TIMEOUT, MEMORY_EXCEEDED, INVALID_OUTPUT)

VERIFIER_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = VERIFIER_DIR.parent
# The child's whole start: `verifier` as a bare package of VERIFIER_DIR (given as argv[1]), so the child
# imports verifier.sandbox_child and verifier.grid_cells and never runs verifier/__init__.py, which
# loads the verifier and the ARC data layer. Under -I nothing else reaches the child's sys.path.
CHILD_BOOT = ("import sys, types; verifier = types.ModuleType('verifier'); verifier.__path__ = [sys.argv[1]]; "
              "sys.modules['verifier'] = verifier; from verifier.sandbox_child import main; main()")


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): e.g. the child interpreter could not start."""


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


def child_command() -> list[str]:
    """The child's command line: an empty network namespace where one can be made, then the interpreter."""
    return [*_network_namespace_prefix(), sys.executable, "-I", "-B", "-c", CHILD_BOOT, str(VERIFIER_DIR)]


def network_namespace_available() -> bool:
    """Whether children run in an empty network namespace on this machine (probed once)."""
    return bool(_network_namespace_prefix())


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
    cmd = child_command()
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
        return {i: failed.at(i) for i in indices}
    if not (isinstance(message, dict) and message.get("event") == "ready"):
        failed = _death(proc, message, limits, "while running the program's top level")
        return {i: failed.at(i) for i in indices}

    settled: dict[int, PairResult] = {}
    for position, index in enumerate(indices):
        message = reader.next(time.monotonic() + step)
        if isinstance(message, dict) and message.get("index") == position:
            settled[index] = _child_result(position, message).at(index)
            continue
        # Late, dead, or talking nonsense: this grid fails; the rest get a fresh interpreter.
        settled[index] = _death(proc, message, limits, f"on grid {position}").at(index)
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
