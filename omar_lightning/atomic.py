"""Atomic file replacement: a reader sees the old complete file or the new complete file, never a part.

:func:`atomic_write` writes to a temporary file in the destination's directory (same file
system, so the rename is atomic), flushes and fsyncs it, renames it over the destination with
``os.replace`` and fsyncs the directory so the rename itself survives a power loss. A process
killed at any point leaves the destination untouched (or already replaced) and at most a
temporary file ``.<name>.<pid>@<host>.<token>.tmp``. Its suffix is ``.tmp``, so Lightning's search
for ``last*.ckpt`` never takes it for a checkpoint; the next write of the same destination
removes temporaries that dead processes of this host left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["atomic_write", "is_temporary", "remove_stale_temporaries", "temporary_name"]

_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9_-]+)\.(?P<token>[0-9a-f]{8})\.tmp$")


def temporary_name(path: Path) -> Path:
    """A fresh temporary path next to ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}@{_HOST}.{secrets.token_hex(4)}.tmp")


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_write`."""
    return bool(_PATTERN.match(Path(path).name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists but belongs to someone else
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``path`` left by processes of this host that no longer run."""
    path = Path(path)
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _PATTERN.match(entry.name)
        if not m or m["name"] != path.name or m["host"] != _HOST:
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or _alive(pid):
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    return removed


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not supported on this platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file that then replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_directory(path.parent)
    return path
