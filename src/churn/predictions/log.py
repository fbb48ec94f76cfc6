"""The prediction log's batch writer (parquet), its reader and its compaction.

The record format and the layout are :mod:`churn.predictions.records`'s.

The transformer writes gzipped JSON lines with the standard library
(:mod:`churn.predictions.logger`: the serving image has no pyarrow or boto3); this
module writes parquet and reads both kinds into one schema (:data:`SCHEMA`). Every object is
written whole or not at all: locally to a hidden temporary file that is flushed to disk and
renamed into place; on S3 with one ``PUT`` (S3 never shows a partial object). Readers skip
hidden files, so a temporary file left by a crash is never read.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import io
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from churn.errors import ChurnError
from churn.predictions.records import (
    COLUMNS,
    COMPACTED,
    DEFAULT_VARIANT,
    JSONL_SUFFIX,
    SOURCES,
    VARIANTS,
    Scored,
    is_log_object,
    object_name,
)
from churn.storage import Location, read_object, s3, write_object

log = logging.getLogger(__name__)

_TYPES = {
    "request_id": pa.string(),
    "customer_id": pa.string(),
    "scored_at": pa.timestamp("ms", tz="UTC"),
    "model_name": pa.string(),
    "model_version": pa.string(),
    "churn_probability": pa.float64(),
    "churn_label": pa.int8(),
    "source": pa.string(),
    "variant": pa.string(),
}
#: Columns of every prediction-log object, in this order (both writers, parquet and JSON lines).
SCHEMA = pa.schema([pa.field(name, _TYPES[name]) for name in COLUMNS])


def _table(items: Sequence[Scored], model_name: str, model_version: str, source: str) -> pa.Table:
    sizes = [len(item.probabilities) for item in items]
    n = sum(sizes)
    request_ids = np.repeat(np.asarray([item.request_id for item in items], dtype=object), sizes)
    customers: list[str | None] = []
    for item, size in zip(items, sizes, strict=True):
        customers.extend(item.customer_ids if item.customer_ids is not None else [None] * size)
    times = np.repeat(np.asarray([round(item.scored_at * 1000) for item in items], dtype=np.int64), sizes)
    versions = np.repeat(np.asarray([item.model_version or model_version for item in items], dtype=object), sizes)
    variants = np.repeat(np.asarray([item.variant for item in items], dtype=object), sizes)
    return pa.table(
        {
            "request_id": pa.array(request_ids, pa.string()),
            "customer_id": pa.array(customers, pa.string()),
            "scored_at": pa.array(times, pa.timestamp("ms", tz="UTC")),
            "model_name": pa.array([model_name] * n, pa.string()),
            "model_version": pa.array(versions, pa.string()),
            "churn_probability": pa.array(np.concatenate([item.probabilities for item in items]), pa.float64()),
            "churn_label": pa.array(np.concatenate([item.labels for item in items]).astype(np.int8), pa.int8()),
            "source": pa.array([source] * n, pa.string()),
            "variant": pa.array(variants, pa.string()),
        },
        schema=SCHEMA,
    )


def _write_objects(table: pa.Table, root: str, source: str, client: Any = None) -> list[str]:
    """Write ``table`` as one object per UTC day (atomically); return the paths or URIs written."""
    if table.num_rows == 0:
        return []
    days = pd.to_datetime(table.column("scored_at").to_numpy(zero_copy_only=False), utc=True).strftime("%Y-%m-%d")
    written = []
    for day in sorted(set(days)):
        part = table.filter(pa.array(days == day)) if len(set(days)) > 1 else table
        buffer = io.BytesIO()
        pq.write_table(part, buffer)
        name = object_name(day, source, ".parquet")
        written.append(write_object(root, name, buffer.getvalue(), what="the prediction log", client=client))
    return written


def write_prediction_log(
    frame: pd.DataFrame,
    root: str | Path,
    *,
    run_id: str,
    model_name: str,
    model_version: str,
    scored_at: dt.datetime | None = None,
    source: str = "batch",
    variant: str = DEFAULT_VARIANT,
) -> list[str]:
    """Record a batch of predictions (a batch scoring run's rows) in the prediction log.

    Args:
        frame: One row per scored customer with ``customer_id``, ``churn_probability`` and
            ``churn_label`` columns (others are ignored).
        root: The log's folder or ``s3://bucket/prefix``.
        run_id: The run that scored them (kept as ``request_id``).
        model_name: Registered model name.
        model_version: Model version that scored them.
        scored_at: When they were scored (now, UTC, when omitted); it picks the day partition.
        source: ``batch`` (default) or ``online``.
        variant: Who answered: ``champion`` (default), ``canary`` or ``shadow``.

    Returns:
        The objects written (one per day partition).

    Raises:
        ChurnError: A column is missing, a value is out of range, or the store cannot be written.

    """
    missing = [c for c in ("customer_id", "churn_probability", "churn_label") if c not in frame.columns]
    if missing:
        raise ChurnError(f"prediction log: the scored frame has no column {', '.join(map(repr, missing))}")
    if source not in SOURCES:
        raise ChurnError(f"prediction log: source must be one of {SOURCES}, not {source!r}")
    if variant not in VARIANTS:
        raise ChurnError(f"prediction log: variant must be one of {VARIANTS}, not {variant!r}")
    probabilities = pd.to_numeric(frame["churn_probability"], errors="coerce").to_numpy(dtype=np.float64)
    if len(probabilities) and not ((probabilities >= 0) & (probabilities <= 1)).all():
        raise ChurnError("prediction log: 'churn_probability' must be numbers between 0 and 1")
    labels = pd.to_numeric(frame["churn_label"], errors="coerce").to_numpy()
    if len(labels) and not np.isin(labels, (0, 1)).all():
        raise ChurnError("prediction log: 'churn_label' must be 0 or 1")
    when = (scored_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).timestamp()
    ids = [None if pd.isna(c) else str(c) for c in frame["customer_id"]]
    item = Scored(run_id, ids, probabilities, labels.astype(np.int8), when, variant)  # type: ignore[arg-type]
    return _write_objects(_table([item], model_name, model_version, source), str(root), source)


def read_prediction_log(root: str | Path, *, start: dt.date | None = None, end: dt.date | None = None) -> pd.DataFrame:
    """All records of the days ``start``..``end`` (inclusive; open when None), with a ``date`` column.

    Hidden files (a crash's leftover temporary file) are skipped; so are the objects a day's
    ``compacted.parquet`` already holds (a compaction that stopped before deleting them leaves
    no duplicates). An unreadable object is a :class:`ChurnError` naming it (the writers never
    leave one).
    """
    frames = []
    for day, objects in _days(str(root), start, end):
        for table in _day_tables(objects):
            frame: pd.DataFrame = table.to_pandas()
            frame["date"] = day
            frames.append(frame)
    if not frames:
        empty: pd.DataFrame = SCHEMA.empty_table().to_pandas()
        empty["date"] = pd.Series(dtype=object)
        return empty
    return pd.concat(frames, ignore_index=True)


def _day_tables(objects: dict[str, tuple[str, Any]]) -> list[pa.Table]:
    """The tables of one day's objects (name -> (where, handle)): the compacted one, then those it does not hold."""
    tables: list[pa.Table] = []
    covered: set[str] = set()
    if COMPACTED in objects:
        where, handle = objects[COMPACTED]
        compacted, covered = _read_compacted(handle, where)
        tables.append(compacted)
    for name, (where, handle) in sorted(objects.items()):
        if name != COMPACTED and name not in covered:
            tables.append(read_log_object(handle, where))
    return tables


def _read_compacted(handle: Any, where: str) -> tuple[pa.Table, set[str]]:
    """A compacted object's records and the names of the objects it holds (its parquet metadata)."""
    table = read_log_object(handle, where, keep_metadata=True)
    packed = (table.schema.metadata or {}).get(_COVERS_KEY)
    if packed is None:
        raise ChurnError(f"prediction log object {where} does not say which objects it holds (not compacted here?)")
    names = zlib.decompress(base64.b64decode(packed)).decode().split("\n")
    return table.replace_schema_metadata(None), {n for n in names if n}


def read_log_object(handle: Any, name: str, *, keep_metadata: bool = False) -> pa.Table:
    """One log object (a path, or a buffer of its bytes) as a table of :data:`SCHEMA`, by its name's suffix.

    Raises:
        ChurnError: The object is not readable as its suffix says, or its columns are not the log's.

    """
    if isinstance(handle, _S3Object):
        handle = handle.fetch()
    try:
        if name.endswith(JSONL_SUFFIX):
            data = handle.to_pybytes() if isinstance(handle, pa.Buffer) else Path(handle).read_bytes()
            options = pa_json.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="error")
            table = pa_json.read_json(io.BytesIO(gzip.decompress(data)), parse_options=options)
        else:
            table = pq.read_table(pa.BufferReader(handle) if isinstance(handle, pa.Buffer) else handle)
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        kind = "gzipped JSON-lines" if name.endswith(JSONL_SUFFIX) else "parquet"
        raise ChurnError(f"prediction log object {name} is not a readable {kind} file: {exc}") from None
    table = _with_variant(table)
    if tuple(table.column_names) != COLUMNS:
        raise ChurnError(f"prediction log object {name} has columns {table.column_names}, not {list(COLUMNS)}")
    return table.cast(SCHEMA.with_metadata(table.schema.metadata) if keep_metadata else SCHEMA)


def _with_variant(table: pa.Table) -> pa.Table:
    """An object from before the ``variant`` column: every answer was the champion's (it had no other)."""
    if tuple(table.column_names) == COLUMNS[:-1]:
        return table.append_column("variant", pa.array([DEFAULT_VARIANT] * table.num_rows, pa.string()))
    if "variant" in table.column_names and table.column("variant").null_count:  # JSON lines without the field
        filled = pc.fill_null(table.column("variant"), DEFAULT_VARIANT)
        return table.set_column(table.column_names.index("variant"), "variant", filled)
    return table


def _days(where: str, start: dt.date | None, end: dt.date | None) -> Any:
    """Each day partition in the window, oldest first: ``(day, {name: (where, handle)})``."""
    found: dict[dt.date, dict[str, tuple[str, Any]]] = {}
    for day, name, source, handle in _objects(where, start, end):
        found.setdefault(day, {})[name] = (source, handle)
    return sorted(found.items())


def _objects(where: str, start: dt.date | None, end: dt.date | None) -> Any:
    def wanted(day_text: str) -> dt.date | None:
        try:
            day = dt.date.fromisoformat(day_text)
        except ValueError:
            return None
        if (start and day < start) or (end and day > end):
            return None
        return day

    location = Location.parse(where)
    if location.is_s3:
        client = s3.s3_client()
        base = location.folder()
        # With a window, list only its days' partitions, not the whole history of the log.
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)] if start and end else []
        parts = [base.join(f"date={day}/") for day in days] or [base]
        try:
            keys = [key for part in parts for key in s3.list_objects(part, client=client).keys]
        except Exception as exc:
            raise ChurnError(f"cannot list the prediction log at {where}: {exc}") from exc
        for key in sorted(keys):
            part, _, name = key.removeprefix(base.key).partition("/")
            day = wanted(part.removeprefix("date=")) if part.startswith("date=") else None
            if day is None or not is_log_object(name):
                continue
            yield day, name, f"s3://{location.bucket}/{key}", _S3Object(client, Location.s3(location.bucket, key))
        return
    folder = location.path
    for path in sorted(folder.glob("date=*/*")):
        day = wanted(path.parent.name.removeprefix("date="))
        if day is not None and is_log_object(path.name):
            yield day, path.name, str(path), str(path)


@dataclass(frozen=True)
class _S3Object:
    """An S3 object to fetch when it is read (listing a day does not download it)."""

    client: Any
    where: Location

    def fetch(self) -> pa.Buffer:
        return pa.py_buffer(read_object(self.where, client=self.client))


#: Parquet metadata key of a compacted object: the names of the objects it holds (zlib, base64).
_COVERS_KEY = b"churn.prediction_log.covers"


@dataclass(frozen=True)
class CompactedDay:
    """What compacting one day did."""

    day: dt.date
    records: int | None  # None: compact already, not read
    merged: int
    deleted: int

    def line(self) -> str:
        if not self.merged and not self.deleted:
            return f"{self.day}: already compact"
        merged = f"{self.merged} objects merged into {COMPACTED} ({self.records} records)"
        return f"{self.day}: {merged}, {self.deleted} deleted"


def compact_prediction_log(
    root: str | Path, *, start: dt.date | None = None, end: dt.date | None = None
) -> list[CompactedDay]:
    """Fold each day's many small objects into one ``compacted.parquet`` per day partition.

    Safe for readers at every step: the compacted object is written whole (atomic rename;
    one S3 PUT) and names in its metadata the objects it holds, which readers then skip;
    only after that are those objects deleted. A compaction that stops half way therefore
    leaves neither duplicates nor gaps, and running it again finishes the work (it is
    idempotent: a compact day is left alone). Run one compaction at a time per log; the
    writers may go on writing (their new objects are merged the next time).

    Args:
        root: The log's folder or ``s3://bucket/prefix``.
        start: First day to compact (open when None).
        end: Last day to compact (open when None; the CLI stops before today, which writers still fill).

    Returns:
        One entry per day partition found.

    Raises:
        ChurnError: An object cannot be read, or the store cannot be written or cleaned.

    """
    where = str(root)
    done = []
    for day, objects in _days(where, start, end):
        if set(objects) == {COMPACTED}:  # compact already: not even read
            done.append(CompactedDay(day, None, 0, 0))
            continue
        covered: set[str] = set()
        tables = []
        if COMPACTED in objects:
            compacted, covered = _read_compacted(objects[COMPACTED][1], objects[COMPACTED][0])
            tables.append(compacted)
        fresh = sorted(n for n in objects if n != COMPACTED and n not in covered)
        stale = sorted(n for n in objects if n != COMPACTED and n in covered)
        tables += [read_log_object(objects[n][1], objects[n][0]) for n in fresh]
        table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        if fresh:
            order = pc.sort_indices(table, sort_keys=[("scored_at", "ascending")])
            covers = "\n".join(sorted(covered | set(fresh))).encode()
            metadata = {_COVERS_KEY: base64.b64encode(zlib.compress(covers, 9))}
            _put_compacted(where, day, table.take(order).replace_schema_metadata(metadata))
        _delete(where, day, [*fresh, *stale])
        done.append(CompactedDay(day, table.num_rows, len(fresh), len(fresh) + len(stale)))
    return done


def _put_compacted(where: str, day: dt.date, table: pa.Table) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_object(where, f"date={day}/{COMPACTED}", buffer.getvalue())


def _delete(where: str, day: dt.date, names: list[str]) -> None:
    if not names:
        return
    folder = Location.parse(where).folder().join(f"date={day}/")
    if folder.is_s3:
        try:
            s3.delete_objects(folder.bucket, [folder.join(name).key for name in names])
        except ChurnError:
            raise
        except Exception as exc:  # boto3 raises many kinds; each means "cannot delete them"
            raise ChurnError(f"cannot delete compacted objects under {where}/date={day}/: {exc}") from exc
        return
    for name in names:
        path = folder.join(name).path
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise ChurnError(f"cannot delete {path}: {exc}") from exc
