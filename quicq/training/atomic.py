"""Crash-safe file writes: a file is either its old content or its complete new content.

Each write goes to a temporary file in the same directory, is fsynced, then ``os.replace``d into
place, and the directory is fsynced, so a ``kill -9`` at any instant never leaves a torn file.
Files are created with mode 0644 (``tempfile.mkstemp`` alone would leave them 0600): training
outputs, QASM bundles and demo results hold no secrets and are meant to be read by others.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["FILE_MODE", "atomic_write_bytes", "atomic_write_text", "fsync_dir"]

#: Permission bits of every file quicq writes (rw-r--r--).
FILE_MODE = 0o644


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int = FILE_MODE) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync dir), permissions ``mode``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str, *, mode: int = FILE_MODE) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`; creates missing parent directories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode(), mode=mode)
