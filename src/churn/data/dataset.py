"""Where a Dask-engine dataset's parquet parts live: in the task's own folder, or on S3 when workers cannot see it.

A KFP task's artifact folder is local to its pod. A LocalCluster's workers share it; the
workers of a DaskCluster in Kubernetes (or of an existing scheduler) run in other pods and
do not. With ``CHURN_DASK__WORK_URI`` set (the chart sets it with ``dask.enabled``), a task
writes its parts under a new ``<work_uri>/<uuid>/`` prefix, from the workers, and its
artifact folder holds only ``dataset.json`` naming that prefix; the next task's workers read
the parts from there. A prefix is written once and never changed, and the pointer is written
last, so a reader sees a whole dataset or none.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn.errors import ChurnError
from churn.storage import Location, atomic_folder, atomic_path, copy, s3
from churn.storage.arrow import filesystem, list_files

if TYPE_CHECKING:
    import pyarrow.dataset as ds

POINTER = "dataset.json"
PART_GLOB = "part-*.parquet"


def is_dataset(path: str | Path) -> bool:
    """Whether ``path`` is a Dask-engine dataset (a folder of parts, or of a pointer to them)."""
    return Path(path).is_dir()


def location(path: str | Path) -> str:
    """The folder or ``s3://`` prefix (ending in ``/``) holding the dataset's parts."""
    pointer = Path(path) / POINTER
    if pointer.is_file():
        return str(json.loads(pointer.read_text())["uri"])
    return str(path)


def work_uri() -> str | None:
    """The configured ``s3://`` prefix for datasets workers must reach, or None (the task's own folders)."""
    from churn.config import get_settings

    uri = get_settings().dask.work_uri
    if uri and not Location.parse(uri).is_s3:
        raise ChurnError(f"CHURN_DASK__WORK_URI must be an s3:// prefix, got {uri!r}")
    return uri or None


def arrow_dataset(path: str | Path) -> ds.Dataset:
    """The dataset's parts as one pyarrow dataset (for counting rows or reading a column without Dask)."""
    import pyarrow.dataset as ds

    fs, files = list_files(Location.parse(location(path)))
    parts = sorted(file for file, name in files if name.startswith("part-") and name.endswith(".parquet"))
    if not parts:
        raise ChurnError(f"{location(path)} holds no part-*.parquet files")
    return ds.dataset(parts, filesystem=fs, format="parquet")


def fingerprint(path: str | Path) -> tuple[str, int]:
    """The data version of a dataset and its size in bytes.

    ``sha256:`` over the parts' names and bytes for a folder; over their names and ETags
    (the MD5 of an object written in one PUT) for an S3 prefix, so nothing is downloaded.
    """
    import hashlib

    digest = hashlib.sha256()
    where = location(path)
    size = 0
    if (listed := Location.parse(where)).is_s3:
        for item in sorted(s3.list_objects(listed).objects, key=lambda i: i.key):
            name = item.key.rsplit("/", 1)[-1]
            if name.startswith("part-"):
                digest.update(name.encode() + item.etag.encode())
                size += item.size
        return f"sha256:{digest.hexdigest()}", size
    for part in sorted(Path(where).glob(PART_GLOB)):
        digest.update(part.name.encode())
        size += part.stat().st_size
        with part.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}", size


def write_table(table: Any, destination: str) -> None:
    """Write one parquet part: an S3 PUT (whole or not at all), or a local file replaced atomically."""
    import pyarrow.parquet as pq

    if (where := Location.parse(destination)).is_s3:
        fs, key = filesystem(where)
        pq.write_table(table, key, filesystem=fs)
        return
    with atomic_path(destination) as tmp:
        pq.write_table(table, str(tmp))


@contextmanager
def writing(path: str | Path) -> Iterator[str]:
    """Where to write the parts of the dataset at artifact folder ``path`` (a folder, or a prefix, ending in ``/``).

    On success the dataset appears at ``path`` whole; on failure nothing does (a new S3
    prefix is left to the bucket's lifecycle rule, never read).
    """
    target = work_uri()
    if target is None:
        with atomic_folder(path) as tmp:
            yield f"{tmp}/"
        return
    prefix = f"{target.rstrip('/')}/{uuid.uuid4().hex}/"
    yield prefix
    with atomic_folder(path) as tmp:
        (tmp / POINTER).write_text(json.dumps({"uri": prefix}) + "\n")


def publish_local(parts: Path, path: str | Path) -> None:
    """Make a local folder of parts the dataset at ``path``: moved there, or uploaded to the work prefix."""
    with writing(path) as target:
        for part in sorted(parts.glob(PART_GLOB)):
            copy(part, target + part.name)
    shutil.rmtree(parts, ignore_errors=True)


def part_uris(path: str | Path) -> list[str]:
    """The dataset's part files (local paths or ``s3://`` URIs), in name order."""
    where = Location.parse(location(path))
    if where.is_s3:
        keys = s3.list_objects(where.folder()).keys
        return [str(Location.s3(where.bucket, k)) for k in sorted(keys) if k.rsplit("/", 1)[-1].startswith("part-")]
    return [str(p) for p in sorted(where.path.glob(PART_GLOB))]
