"""Daily increments: each day's export published as ``customers_YYYYMMDD`` where monitoring and scoring read it.

An increment is one file (``customers_YYYYMMDD.csv`` or ``.parquet``) or, on the Dask
engine, a folder or ``s3://`` prefix of parquet parts (``customers_YYYYMMDD/``). A local
file or folder is published whole (a rename); an S3 file in one PUT; an S3 folder of parts
is marked complete last (:data:`COMPLETE_MARKER`), and readers take only complete ones.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from churn.data.dataset import is_dataset, part_uris
from churn.data.files import FileFormat
from churn.errors import ChurnError
from churn.storage import Location, atomic_folder, copy, s3, write_object

#: A daily increment: one file, or (the Dask engine's) a folder or prefix of parquet parts.
_INCREMENT = re.compile(r"customers_(\d{8})(\.(csv|parquet)|/)$")
#: Written last into a published folder of parts on S3: a prefix without it is still being written.
COMPLETE_MARKER = "_SUCCESS"


def raw_file_name(date: dt.date, fmt: FileFormat) -> str:
    """``customers_YYYYMMDD.<fmt>``: the name every stage expects of a day's export."""
    return f"customers_{date:%Y%m%d}.{fmt}"


def fetch(uri: str, out: Path) -> None:
    """Copy the file at ``uri`` (a path, ``file://`` or ``s3://bucket/key``) to ``out``, atomically.

    Raises:
        ChurnError: The source does not exist or cannot be read.

    """
    source = Location.parse(uri)
    if source.is_s3:
        try:
            copy(source, out)
        except Exception as exc:  # boto3 raises many kinds; each means "cannot read it"
            raise ChurnError(f"cannot read {uri}: {exc}") from exc
        return
    if not source.path.is_file():
        raise ChurnError(f"data source {uri} does not exist")
    copy(source, out)


def latest_increment(location: str | Path) -> str:
    """The newest ``customers_YYYYMMDD`` export in a folder or under an ``s3://bucket/prefix/`` (by its date).

    Raises:
        ChurnError: The location holds no increment, or S3 cannot be listed.

    """
    where = str(location)
    parsed = Location.parse(where)
    if parsed.is_s3:
        folder = parsed.folder()
        try:
            client = s3.s3_client()
            listing = s3.list_objects(folder, recursive=False, client=client)
            names = [key.removeprefix(folder.key) for key in listing.keys]
            names += [prefix.removeprefix(folder.key) for prefix in listing.prefixes]
            # A folder of parts counts once its marker is there (the publisher writes it last).
            for name in [n for n in names if n.endswith("/")]:
                if not s3.exists(folder.join(name, COMPLETE_MARKER), client=client):
                    names.remove(name)
        except Exception as exc:
            raise ChurnError(f"cannot list {where}: {exc}") from exc
        base = str(folder)
    else:
        path = parsed.path
        found = list(path.glob("customers_*")) if path.is_dir() else []
        names = [p.name + "/" if p.is_dir() else p.name for p in found]
        base = f"{path}/"
    dated: list[tuple[str, str]] = [(m.group(1), str(n)) for n in names if (m := _INCREMENT.fullmatch(n))]
    if not dated:
        raise ChurnError(
            f"no daily increment (customers_YYYYMMDD.csv, or a customers_YYYYMMDD/ folder of parts) in {where}: "
            "run the data pipeline first"
        )
    return base + max(dated)[1]


def is_folder_increment(uri: str) -> bool:
    """Whether ``uri`` names a folder increment (a folder of parts, or an ``s3://`` prefix of them)."""
    where = Location.parse(uri)
    if where.is_s3:
        return uri.endswith("/") or re.fullmatch(r"customers_\d{8}", where.name) is not None
    return where.path.is_dir()


def publish_increment(raw: str | Path, *, date: str = "", destination: str = "", raw_dir: str | Path = "") -> str:
    """Publish a validated daily increment as ``customers_YYYYMMDD.csv`` where monitoring reads it.

    Args:
        raw: The validated export.
        date: Its snapshot date YYYY-MM-DD (empty: today).
        destination: A folder or ``s3://bucket/prefix`` (empty: ``raw_dir``).
        raw_dir: The local raw-data folder, the default destination.

    Returns:
        The path or URI written.

    """
    from churn.data.generator import parse_date

    if is_dataset(raw):
        return _publish_folder(Path(raw), f"customers_{parse_date(date or None):%Y%m%d}", destination or str(raw_dir))
    target = Location.parse(destination or str(raw_dir)).folder().join(raw_file_name(parse_date(date or None), "csv"))
    if target.is_s3:
        try:
            copy(Path(raw), target)
        except Exception as exc:  # boto3 raises many kinds; each means "cannot write it"
            raise ChurnError(f"cannot write {target}: {exc}") from exc
        return str(target)
    copy(Path(raw), target)
    return str(target.path.resolve())


def _publish_folder(raw: Path, name: str, target: str) -> str:
    """Publish a dataset's parts as ``<target>/<name>/``: whole (local rename) or marked complete last (S3)."""
    parts = part_uris(raw)
    root = Location.parse(target).folder().join(f"{name}/")
    if root.is_s3:
        try:
            for part in parts:
                copy(part, root.join(part.rsplit("/", 1)[-1]))
            write_object(root, COMPLETE_MARKER, b"")
        except Exception as exc:  # boto3 raises many kinds; each means "cannot write it"
            raise ChurnError(f"cannot write {root}: {exc}") from exc
        return str(root)
    folder = root.path
    with atomic_folder(folder) as tmp:
        for part in parts:
            copy(part, tmp / part.rsplit("/", 1)[-1])
    return str(folder.resolve()) + "/"
