"""Writing result files so that a kill at any moment leaves the previous version or the new one.

Whole files are written to a temporary file in the same directory, flushed to disk, then renamed
over the target (`os.replace` is atomic on POSIX and Windows). Line logs such as `results.jsonl` are
appended one complete line per write, and readers skip a torn last line.

Temporary files and directories are created private (0600, 0700); before the rename they get the
mode an ordinary `open` or `mkdir` would have given (0644 and 0755 under umask 022), so results can
be read by whoever could read the rest of the output directory.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from hybrid_pipeline.arc.errors import ARCDataError, Problem


def current_umask() -> int:
    """The process's file-creation mask, read without changing it where the system allows.

    Linux shows it in /proc/self/status; elsewhere it is read by setting and restoring it, which
    another thread creating a file at that instant could notice.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def creation_mode(*, directory: bool = False) -> int:
    """The mode `open` (0666) or `mkdir` (0777) gives a new file or directory under the current umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, creation_mode())  # mkstemp made it 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = None) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one record as one line, flushed to disk before returning.

    A torn final line (a kill mid-write) is cut off first, so the new record starts a line of its
    own instead of gluing onto the fragment and corrupting both.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, separators=(",", ":")) + "\n"
    _drop_torn_tail(path)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _drop_torn_tail(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


def read_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Records of a JSONL log; a torn final line (from a kill mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines):
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1 and not line.endswith("\n"):
                return
            raise ARCDataError(Problem("not valid JSON, expected one record per line", file=str(path),
                                           place=f"line {i + 1}")) from None
