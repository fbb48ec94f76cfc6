"""Arrow filesystems for a local folder or an ``s3://`` location (``pyarrow.fs`` imported lazily)."""

from __future__ import annotations

from typing import Any

from churn.storage.location import Location
from churn.storage.s3 import s3_filesystem


def filesystem(where: Location) -> tuple[Any, str]:
    """A pyarrow filesystem and the path on it of ``where`` (``bucket/key`` on S3, the absolute path locally)."""
    import pyarrow.fs  # lazy: the serving image has no pyarrow

    if where.is_s3:
        return s3_filesystem(), f"{where.bucket}/{where.key}"
    return pyarrow.fs.LocalFileSystem(), str(where.path.resolve())


def list_files(where: Location) -> tuple[Any, list[tuple[str, str]]]:
    """The filesystem of ``where`` and the ``(path, base name)`` of each entry directly under it."""
    import pyarrow.fs  # lazy: the serving image has no pyarrow

    fs, base = filesystem(where)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(base, recursive=False))
    return fs, [(info.path, info.base_name) for info in infos]
