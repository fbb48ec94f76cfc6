"""The prediction log: every churn score the system hands out, kept in the data lake.

Each record is one scored customer: ``request_id`` (the V2 request id, or the batch run's
id), ``customer_id`` (null when the caller sent none), ``scored_at`` (UTC), ``model_name``,
``model_version``, ``churn_probability``, ``churn_label`` and ``source`` (``online`` or
``batch``). Records go to a local folder or an ``s3://`` prefix, one parquet object per
flushed batch, partitioned by the UTC day they were scored::

    <root>/date=2026-01-06/online-20260106T101500.123Z-<uuid>.parquet

Every object is written whole or not at all: locally to a hidden temporary file that is
flushed to disk and renamed into place; on S3 with one ``PUT`` (S3 never shows a partial
object). Readers skip hidden files, so a temporary file left by a crash is never read.

Online, :class:`PredictionLogger` keeps the writing off the request path: the transformer
only appends the answer to a bounded in-memory queue (microseconds); a background thread
drains it every ``flush_seconds`` into one object. What a crash can lose is therefore
bounded: a ``kill -9`` loses the records of at most the last flush interval (plus the one
write in flight); a full queue (the store is down or slower than the traffic) drops
records and counts them in ``churn_prediction_log_dropped_total`` rather than slowing or
failing predictions. A normal shutdown (SIGTERM) flushes what is queued.
"""

from __future__ import annotations

import atexit
import datetime as dt
import io
import logging
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn.errors import ChurnError
from churn.io import atomic_path, list_s3, s3_client

log = logging.getLogger(__name__)

#: Columns of every prediction-log object, in this order.
SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string()),
        pa.field("customer_id", pa.string()),
        pa.field("scored_at", pa.timestamp("ms", tz="UTC")),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("churn_probability", pa.float64()),
        pa.field("churn_label", pa.int8()),
        pa.field("source", pa.string()),
    ]
)
COLUMNS = tuple(SCHEMA.names)
SOURCES = ("online", "batch")


@dataclass(frozen=True)
class Scored:
    """One answered request as the transformer saw it (what the queue holds)."""

    request_id: str
    customer_ids: Sequence[str] | None
    probabilities: np.ndarray
    labels: np.ndarray
    scored_at: float  # unix seconds


def _table(items: Sequence[Scored], model_name: str, model_version: str, source: str) -> pa.Table:
    sizes = [len(item.probabilities) for item in items]
    n = sum(sizes)
    request_ids = np.repeat(np.asarray([item.request_id for item in items], dtype=object), sizes)
    customers: list[str | None] = []
    for item, size in zip(items, sizes, strict=True):
        customers.extend(item.customer_ids if item.customer_ids is not None else [None] * size)
    times = np.repeat(np.asarray([round(item.scored_at * 1000) for item in items], dtype=np.int64), sizes)
    return pa.table(
        {
            "request_id": pa.array(request_ids, pa.string()),
            "customer_id": pa.array(customers, pa.string()),
            "scored_at": pa.array(times, pa.timestamp("ms", tz="UTC")),
            "model_name": pa.array([model_name] * n, pa.string()),
            "model_version": pa.array([model_version] * n, pa.string()),
            "churn_probability": pa.array(np.concatenate([item.probabilities for item in items]), pa.float64()),
            "churn_label": pa.array(np.concatenate([item.labels for item in items]).astype(np.int8), pa.int8()),
            "source": pa.array([source] * n, pa.string()),
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
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"
        name = f"date={day}/{source}-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
        if root.startswith("s3://"):
            bucket, _, prefix = root.removeprefix("s3://").partition("/")
            key = f"{prefix.strip('/')}/{name}".lstrip("/")
            buffer = io.BytesIO()
            pq.write_table(part, buffer)
            try:
                (client or s3_client()).put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
            except Exception as exc:
                raise ChurnError(f"cannot write the prediction log to s3://{bucket}/{key}: {exc}") from exc
            written.append(f"s3://{bucket}/{key}")
        else:
            path = Path(root.removeprefix("file://")) / name
            try:
                with atomic_path(path) as tmp:
                    pq.write_table(part, tmp)
            except OSError as exc:
                raise ChurnError(f"cannot write the prediction log to {path}: {exc}") from exc
            written.append(str(path))
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
    probabilities = pd.to_numeric(frame["churn_probability"], errors="coerce").to_numpy(dtype=np.float64)
    if len(probabilities) and not ((probabilities >= 0) & (probabilities <= 1)).all():
        raise ChurnError("prediction log: 'churn_probability' must be numbers between 0 and 1")
    labels = pd.to_numeric(frame["churn_label"], errors="coerce").to_numpy()
    if len(labels) and not np.isin(labels, (0, 1)).all():
        raise ChurnError("prediction log: 'churn_label' must be 0 or 1")
    when = (scored_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).timestamp()
    ids = [None if pd.isna(c) else str(c) for c in frame["customer_id"]]
    item = Scored(run_id, ids, probabilities, labels.astype(np.int8), when)  # type: ignore[arg-type]
    return _write_objects(_table([item], model_name, model_version, source), str(root), source)


def read_prediction_log(root: str | Path, *, start: dt.date | None = None, end: dt.date | None = None) -> pd.DataFrame:
    """All records of the days ``start``..``end`` (inclusive; open when None), with a ``date`` column.

    Hidden files (a crash's leftover temporary file) are skipped; an unreadable object is a
    :class:`ChurnError` naming it (the writers never leave one).
    """
    where = str(root)
    frames = []
    for day, source, handle in _objects(where, start, end):
        try:
            table = pq.read_table(handle)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ChurnError(f"prediction log object {source} is not a readable parquet file: {exc}") from None
        frame: pd.DataFrame = table.to_pandas()
        frame["date"] = day
        frames.append(frame)
    if not frames:
        empty: pd.DataFrame = SCHEMA.empty_table().to_pandas()
        empty["date"] = pd.Series(dtype=object)
        return empty
    return pd.concat(frames, ignore_index=True)


def _objects(where: str, start: dt.date | None, end: dt.date | None) -> Any:
    def wanted(day_text: str) -> dt.date | None:
        try:
            day = dt.date.fromisoformat(day_text)
        except ValueError:
            return None
        if (start and day < start) or (end and day > end):
            return None
        return day

    if where.startswith("s3://"):
        client = s3_client()
        base = where.rstrip("/")
        bucket, prefix = base.removeprefix("s3://").partition("/")[0], _root_prefix(base)
        # With a window, list only its days' partitions, not the whole history of the log.
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)] if start and end else []
        parts = [f"{base}/date={day}/" for day in days] or [base]
        try:
            keys = [key for part in parts for key in list_s3(part, client=client)[2]]
        except Exception as exc:
            raise ChurnError(f"cannot list the prediction log at {where}: {exc}") from exc
        for key in sorted(keys):
            part, _, name = key.removeprefix(prefix).partition("/")
            day = wanted(part.removeprefix("date=")) if part.startswith("date=") else None
            if day is None or name.startswith(".") or not name.endswith(".parquet"):
                continue
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            yield day, f"s3://{bucket}/{key}", pa.BufferReader(body)
        return
    folder = Path(where.removeprefix("file://"))
    for path in sorted(folder.glob("date=*/*.parquet")):
        day = wanted(path.parent.name.removeprefix("date="))
        if day is not None and not path.name.startswith("."):
            yield day, str(path), str(path)


def _root_prefix(uri: str) -> str:
    """The key prefix of an ``s3://bucket/prefix`` URI ("" or ending in "/")."""
    prefix = uri.removeprefix("s3://").partition("/")[2].strip("/")
    return prefix + "/" if prefix else ""


def check_writer(root: str) -> None:
    """Import what writing to ``root`` needs now (boto3 for ``s3://``), so a missing package fails at start."""
    if root.startswith("s3://"):
        import boto3  # noqa: F401


class PredictionLogger:
    """A bounded queue of answers and a background thread that writes them in batches.

    Args:
        root: Folder or ``s3://`` prefix of the log.
        model_name: Name of the served model.
        model_version: Its version.
        flush_seconds: Longest time an answer waits in memory before it is written.
        max_queue: Most answers held in memory; beyond it, answers are dropped and counted.
        source: ``online`` for the transformer.

    """

    def __init__(
        self,
        root: str | Path,
        *,
        model_name: str,
        model_version: str,
        flush_seconds: float = 1.0,
        max_queue: int = 100_000,
        source: str = "online",
    ) -> None:
        if flush_seconds <= 0:
            raise ChurnError(f"prediction log: flush interval must be > 0 seconds, got {flush_seconds}")
        self.root = str(root)
        self.model_name = model_name
        self.model_version = model_version
        self.flush_seconds = flush_seconds
        self.source = source
        self._queue: queue.Queue[Scored] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._client = s3_client() if self.root.startswith("s3://") else None
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.written = 0
        self.failed_writes = 0

    def start(self) -> PredictionLogger:
        """Start the writer thread; a normal interpreter exit flushes what is queued."""
        import churn.serving.metrics  # noqa: F401  (imported here, not on the writer thread's first flush)

        self._thread.start()
        atexit.register(self.close)
        return self

    def record(
        self, request_id: str, customer_ids: Sequence[str] | None, probabilities: np.ndarray, labels: np.ndarray
    ) -> None:
        """Queue one answered request (never blocks; drops and counts when the queue is full)."""
        try:
            self._queue.put_nowait(Scored(request_id, customer_ids, probabilities, labels, time.time()))
        except queue.Full:
            from churn.serving.metrics import PREDICTION_LOG_DROPPED

            PREDICTION_LOG_DROPPED.inc(len(probabilities))

    def _drain(self) -> list[Scored]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def flush(self) -> int:
        """Write everything queued now; return the number of records written."""
        from churn.serving.metrics import PREDICTION_LOG_DROPPED, PREDICTION_LOG_RECORDS

        items = self._drain()
        if not items:
            return 0
        table = _table(items, self.model_name, self.model_version, self.source)
        try:
            _write_objects(table, self.root, self.source, self._client)
        except ChurnError as error:  # the store is down: count and carry on, never fail predictions
            self.failed_writes += 1
            PREDICTION_LOG_DROPPED.inc(table.num_rows)
            log.warning("%s (%d records dropped)", error, table.num_rows)
            return 0
        self.written += table.num_rows
        PREDICTION_LOG_RECORDS.inc(table.num_rows)
        return int(table.num_rows)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()
        self.flush()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread after one last flush."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout)
        else:
            self.flush()
