"""Atomic file output with the standard library only (the serving image imports it without pyarrow)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
