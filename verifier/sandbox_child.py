"""The sandbox's child interpreter: runs one candidate program on a list of grids, one JSON line each.

`verifier.sandbox_process` starts it as ``python -I -B -c BOOT VERIFIER_DIR``, where BOOT registers
``verifier`` as a bare package of that directory and calls `main`. So the child loads this module and
`verifier.grid_cells` and nothing else of the project (not verifier/__init__.py, which pulls in the
ARC data layer), and its sys.path is the interpreter's own: whatever the child holds, the program can
reach, since both share one interpreter.

Protocol: the config is one JSON object on stdin (source, grids, limits, the paths the program may
read); results go to stdout, one JSON object a line: {"event": "started"}, then {"event": "ready"} or
{"event": "load_failed", ...}, then {"index": i, "status": ...} per grid. Everything the program
prints goes nowhere.

Nothing here may be patched by the program into weaker checks: the audit hook and the path rules
bind every function they call when they are made, before the program runs, and read no module
global afterwards.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
from typing import Any, Callable

import numpy  # before the limits: numpy maps its libraries and sizes its buffers at import

from verifier.grid_cells import MAX_SIDE, cell_value, plain_rows

PROGRAM_FILENAME = "<program>"
MAX_MESSAGE_CHARS = 500


class Timeout(BaseException):
    """Raised by the interval timer; a BaseException so `except Exception` in the program misses it."""


def _on_alarm(signum, frame):
    raise Timeout()


class _Discard:
    def write(self, text):
        return len(text)

    def flush(self):
        pass


def set_limits(config: dict) -> None:
    """Address space, file size, no core files, CPU time, no new processes; SIGALRM raises Timeout."""
    memory, size, cpu = config["memory_bytes"], config["file_bytes"], config["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # not enforced for root; the hook covers fork
    # Writing past the size limit then fails with an OSError instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _on_alarm)


# --------------------------------------------------------------------------------------------------
# The audit hook


DENY_ALWAYS = (
    "socket.", "ctypes.", "subprocess.", "os.fork", "os.posix_spawn", "os.spawn", "os.exec",
    "os.system", "os.kill", "os.killpg", "signal.pthread_kill", "pty.", "os.symlink", "os.link",
    "resource.setrlimit", "resource.prlimit", "gc.get_referrers", "gc.get_referents", "gc.get_objects",
    "code.__new__", "cpython.PyInterpreterState_New", "sqlite3.enable_load_extension",
    "sqlite3.load_extension", "os.setns", "os.unshare", "webbrowser.open", "os.startfile",
    "_winapi.", "msvcrt.", "winreg.",
)
PATH_WRITES = (
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
    "os.utime", "os.chflags", "os.lchflags", "os.lchmod", "os.chdir", "os.mkfifo", "os.mknod",
    "sqlite3.connect",
)
PATH_READS = ("os.listdir", "os.scandir")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")


def path_rules(tmp: str, read_roots, denied_reads) -> tuple[Callable, Callable, Callable, Callable]:
    """(plain, check_read, check_write, is_dir) for the audit hook; the checks raise PermissionError.

    A path may be written inside `tmp` (and the devices above), read there or under a read root
    outside every denied prefix. Paths are resolved symlink by symlink, so a link cannot point a
    check elsewhere. Every function used is bound now (the program could otherwise replace
    os.path.realpath or builtins.len and change the answers).
    """
    stat, lstat, readlink, getcwd = os.stat, os.lstat, os.readlink, os.getcwd
    str_join, str_split, str_startswith = str.join, str.split, str.startswith
    bytes_decode = bytes.decode
    # st_mode by position: the program could patch os.stat_result's attributes, not tuple indexing.
    field = tuple.__getitem__
    _isinstance, _any, _tuple, _frozenset, _str, _bytes = isinstance, any, tuple, frozenset, str, bytes
    Denied = PermissionError
    read_roots, denied_reads = _tuple(read_roots), _tuple(denied_reads)
    devices = _frozenset(DEVICES)

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

    return plain, check_read, check_write, is_dir


def make_hook(tmp: str, read_roots, denied_reads, denied_modules) -> Callable[[str, tuple], None]:
    """The audit hook (PEP 578): raises PermissionError for a denied event before it happens.

    Denied: every event starting with one of DENY_ALWAYS; PATH_WRITES outside `tmp`; PATH_READS and
    opening for reading outside what `path_rules` allows; opening any directory (a descriptor would
    let later dir_fd-relative calls escape the path checks); importing a module whose top-level
    package is in `denied_modules`, or _posixsubprocess.
    """
    plain, check_read, check_write, is_dir = path_rules(tmp, read_roots, denied_reads)
    str_split, str_startswith, int_and = str.split, str.startswith, int.__and__
    _isinstance, _len, _any, _str, _bytes, _int = isinstance, len, any, str, bytes, int
    Denied = PermissionError
    denied_modules = frozenset(denied_modules)
    deny_always, path_writes, path_reads = tuple(DENY_ALWAYS), frozenset(PATH_WRITES), frozenset(PATH_READS)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

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


# --------------------------------------------------------------------------------------------------
# Running the program


def error_fields(error: BaseException) -> dict:
    """error_type, error_message (capped) and the program line where it was raised (None if not in it)."""
    try:
        message = str(error)
    except BaseException:
        message = "(unprintable message)"
    line = getattr(error, "lineno", None) if isinstance(error, SyntaxError) else None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == PROGRAM_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return {"error_type": type(error).__name__, "error_message": message[:MAX_MESSAGE_CHARS],
            "line": line if isinstance(line, int) else None}


def failure(error: BaseException, limit: float) -> dict:
    """The result fields for an error: status timeout, memory_exceeded or exception."""
    if isinstance(error, Timeout):
        return {"status": "timeout", "error_type": None, "line": None,
                "error_message": f"ran longer than {limit} s"}
    if isinstance(error, MemoryError):
        return {"status": "memory_exceeded", **error_fields(error),
                "error_message": "MemoryError: allocation beyond the memory limit"}
    return {"status": "exception", **error_fields(error)}


def returned_grid(value: Any) -> tuple[list[list[int]] | None, str | None]:
    """(rows of ints, None) or (None, why the program's return value is not a grid).

    The number of rows is checked before any row is read, so a huge return value fails at once.
    """
    if isinstance(value, numpy.ndarray) and value.ndim != 2:
        return None, f"returned an array with {value.ndim} dimensions, expected 2"
    if not isinstance(value, (list, tuple, numpy.ndarray)):
        return None, f"returned {type(value).__name__}, expected a grid (a list of rows)"
    if not 1 <= len(value) <= MAX_SIDE:
        return None, f"returned {len(value)} rows, expected 1 to {MAX_SIDE}"
    rows = plain_rows(value)
    if isinstance(rows, str):
        return None, rows
    if not 1 <= len(rows[0]) <= MAX_SIDE:
        return None, f"returned rows of {len(rows[0])} cells, expected 1 to {MAX_SIDE}"
    grid = []
    for r, row in enumerate(rows):
        cells = [cell_value(v) for v in row]
        if None in cells:
            c = cells.index(None)
            return None, f"row {r} col {c} is {repr(row[c])[:30]}, expected an int 0..9"
        grid.append(cells)
    return grid, None


def timed(limit: float, function: Callable, *args):
    """function(*args) with the interval timer set to `limit` seconds (Timeout when it fires)."""
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return function(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def run_one(transform: Callable, grid: list[list[int]], config: dict) -> dict:
    """One grid's result: {"status": "returned", "output": rows} or a failure, with "seconds"."""
    argument = numpy.array(grid, dtype=numpy.uint8) if config["as_numpy"] else [list(row) for row in grid]
    limit = config["time_limit_s"]
    start = time.perf_counter()
    try:
        rows, why = timed(limit, lambda: returned_grid(transform(argument)))
    except BaseException as error:
        return {**failure(error, limit), "seconds": time.perf_counter() - start}
    seconds = time.perf_counter() - start
    if why is not None:
        return {"status": "invalid_output", "error_message": why, "seconds": seconds}
    return {"status": "returned", "output": rows, "seconds": seconds}


def main() -> None:
    """Read the config, set the limits and the hook, load the program, report each grid, exit."""
    config = json.loads(sys.stdin.buffer.read())
    results = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")

    def send(message):
        results.write(json.dumps(message) + "\n")

    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    roots = config["read_roots"]
    # Keeps only the Python installation; the hook would deny anything else anyway.
    sys.path[:] = [p for p in sys.path
                   if any(os.path.realpath(p) == r or os.path.realpath(p).startswith(r + "/") for r in roots)]
    set_limits(config)
    sys.addaudithook(make_hook(config["tmp"], roots, config["denied_reads"], config["denied_modules"]))
    send({"event": "started"})

    namespace = {"__name__": "__program__", "__builtins__": __builtins__}
    limit = config["time_limit_s"]
    sys.stdout = sys.stderr = _Discard()
    try:
        timed(limit, exec, compile(config.pop("source"), PROGRAM_FILENAME, "exec"), namespace)
        transform = namespace.get("transform")
        if not callable(transform):
            raise NameError("the program does not define a function transform(grid)")
    except BaseException as error:
        send({"event": "load_failed", **failure(error, limit)})
        os._exit(0)
    send({"event": "ready"})
    for index, grid in enumerate(config.pop("grids")):
        send({"index": index, **run_one(transform, grid, config)})
    # Skip atexit handlers and finalizers the program may have registered.
    os._exit(0)
