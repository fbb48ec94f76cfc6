"""File output that never leaves a half-written file behind.

Every writer goes through :func:`atomic_path`: data is written to a hidden temporary
file in the destination folder, flushed to disk, then renamed over the destination in
one step. A crash or an exception at any point leaves either the old file or the new
one, never a mix, and no temporary file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from churn.data import schema

FileFormat = Literal["csv", "parquet"]

_ARROW_TYPES = {
    schema.Kind.ID: pa.string(),
    schema.Kind.DATE: pa.date32(),
    schema.Kind.INT: pa.int64(),
    schema.Kind.FLOAT: pa.float64(),
    schema.Kind.CATEGORY: pa.string(),
    schema.Kind.LABEL: pa.int8(),
}
#: Arrow schema of the raw export, so CSV and parquet files carry the same types.
RAW_ARROW_SCHEMA = pa.schema([pa.field(c.name, _ARROW_TYPES[c.kind]) for c in schema.RAW_COLUMNS])


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


def raw_table(frame: pd.DataFrame) -> pa.Table:
    """Convert a raw customer frame to Arrow with the declared column types."""
    columns = {}
    for field in RAW_ARROW_SCHEMA:
        series = frame[field.name]
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(object)
        columns[field.name] = pa.array(series, type=field.type, from_pandas=True)
    return pa.table(columns, schema=RAW_ARROW_SCHEMA)


def write_raw(frames: Iterable[pd.DataFrame], path: str | os.PathLike[str], fmt: FileFormat = "csv") -> Path:
    """Stream raw customer frames into one CSV or parquet file, atomically.

    Frames are written as they arrive, so a file larger than memory can be produced
    from a generator of blocks.
    """
    with atomic_path(path) as tmp:
        writer: pa_csv.CSVWriter | pq.ParquetWriter
        if fmt == "csv":
            writer = pa_csv.CSVWriter(
                str(tmp), RAW_ARROW_SCHEMA, write_options=pa_csv.WriteOptions(quoting_style="needed")
            )
        elif fmt == "parquet":
            writer = pq.ParquetWriter(str(tmp), RAW_ARROW_SCHEMA)
        else:
            raise ValueError(f"unknown format {fmt!r}; use 'csv' or 'parquet'")
        with writer:
            for frame in frames:
                writer.write_table(raw_table(frame))
    return Path(path)


def s3_client() -> Any:
    """A boto3 S3 client on ``AWS_ENDPOINT_URL`` or ``MLFLOW_S3_ENDPOINT_URL`` (MinIO), else AWS."""
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint)


def list_s3(uri: str, *, client: Any = None, recursive: bool = True) -> tuple[str, str, list[str]]:
    """The bucket, the prefix (``""`` or ending in ``/``) and the keys under an ``s3://bucket/prefix`` URI.

    Listing failures propagate as boto3 raised them; callers name the URI in their error.
    """
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    options = {} if recursive else {"Delimiter": "/"}
    pages = (client or s3_client()).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, **options)
    return bucket, prefix, [item["Key"] for page in pages for item in page.get("Contents", [])]
