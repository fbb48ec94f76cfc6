"""Local file output that never leaves a half-written file behind (standard library only).

Every writer goes through :func:`atomic_path`: data is written to a hidden temporary file in
the destination folder, flushed to disk, then renamed over the destination in one step. A
crash or an exception at any point leaves either the old file or the new one, never a mix,
and no temporary file. :func:`atomic_folder` does the same for a whole folder. The serving
image imports this module (it has no pyarrow), so nothing here imports a heavy library.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    Args:
        path: Final destination. Its parent folder is created if missing.

    Yields:
        A temporary path in the same folder (same filesystem, so the rename is atomic).

    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Hidden, unique, and ending in the target's suffix (some writers insist on it, e.g. KFP's ".yaml").
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp{target.suffix}")
    try:
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces ``folder`` whole, on failure it is removed.

    A reader sees the old folder or the complete new one, never a part of it.
    """
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        tmp.replace(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(body: bytes, path: str | os.PathLike[str]) -> Path:
    """Write ``body`` to ``path``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(body)
    return Path(path)


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    return Path(path)


def write_parquet(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a frame as parquet, atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


def copy_file(source: str | os.PathLike[str], destination: str | os.PathLike[str]) -> Path:
    """Copy a local file to ``destination``, atomically."""
    with atomic_path(destination) as tmp:
        shutil.copyfile(source, tmp)
    return Path(destination)
