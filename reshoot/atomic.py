"""Atomic writes: a reader (or a re-run after a kill) sees the old file or the new one, never half of one."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

#: errno values that mean "the disk (or the user's quota on it) is full".
DISK_FULL_ERRNOS = tuple(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)
#: What to do about a full disk under a workspace (see :func:`naming_full_disk`).
ANOTHER_WORKSPACE = "choose another --workspace on a disk with room"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON; numpy scalars and arrays and paths are written as plain JSON values."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_plain_json) + "\n")


def _plain_json(value: Any) -> Any:
    """``json.dumps``' hook for what it cannot write itself: numpy values (``np.bool_``, integers, floats, arrays)
    become Python ones, paths strings."""
    import numpy as np

    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as JSON; convert it to a number, string, list or "
                    "dict first")


class DiskFullError(OSError):
    """The disk, or the user's quota on it, filled up while writing ``filename`` (a folder); the message says what
    was being written there and what to do. ``errno``, ``strerror`` and ``filename`` are set as for any OSError."""

    def __init__(self, code: int, strerror: str, folder: Path, message: str) -> None:
        super().__init__(code, strerror, str(folder))
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextmanager
def naming_full_disk(folder: Path, what: str, remedy: str) -> Iterator[None]:
    """Turn a full disk (ENOSPC) or a used-up quota (EDQUOT) in the block into a :class:`DiskFullError` naming
    ``folder`` and ``what`` was being written there, and ending "Free space on that disk, or {remedy}". An outer
    block re-words an inner one's error; other errors pass unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        cause = exc.__cause__ if isinstance(exc, DiskFullError) and exc.__cause__ is not None else exc
        reason = getattr(cause, "strerror", None) or os.strerror(exc.errno)
        full = "the disk is full" if exc.errno == errno.ENOSPC else "the disk quota is used up"
        raise DiskFullError(exc.errno, reason, folder, f"cannot write {what} to {folder}: {full} ({reason}). Free "
                                                       f"space on that disk, or {remedy}") from cause


def replace_dir(new_dir: Path, final_dir: Path, trash_root: Path) -> None:
    """Move the finished folder ``new_dir`` to ``final_dir``, replacing what was there.

    The old folder is first renamed into ``trash_root`` and deleted only after the new one is in
    place, so a kill leaves either the old complete folder, or none (and the trash), never a mix.
    ``new_dir``, ``final_dir`` and ``trash_root`` must be on one file system.
    """
    new_dir, final_dir, trash_root = Path(new_dir), Path(final_dir), Path(trash_root)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final_dir.exists():
        trash_root.mkdir(parents=True, exist_ok=True)
        old = trash_root / f"{final_dir.name}-{uuid.uuid4().hex[:8]}"
        os.rename(final_dir, old)
    os.rename(new_dir, final_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
