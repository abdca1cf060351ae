"""Atomic writes: a reader (or a re-run after a kill) sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any


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
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


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
