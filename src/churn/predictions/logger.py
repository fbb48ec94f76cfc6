"""The transformer's side of the prediction log: answers queued, written in batches off the request path.

It runs in the serving image, which has neither pyarrow nor boto3 (together ~180 MB): each
flush is one gzipped JSON-lines object (the log's columns, one record a line, see
:data:`~churn.predictions.records.COLUMNS`) written with the standard library, to a folder
(atomically: hidden temporary file, fsync, rename) or to S3 with one SigV4-signed ``PUT``
(:mod:`churn.storage.sigv4`; S3 never shows a partial object).
:func:`churn.predictions.log.read_prediction_log` reads these
objects and the batch scorer's parquet ones into the same schema, and ``churn predictions
compact`` folds a day's many small objects into one parquet object.

What a crash can lose is bounded: a ``kill -9`` loses the records of at most the last flush
interval (plus the one write in flight); a full queue (the store is down or slower than the
traffic) drops records and counts them in ``churn_prediction_log_dropped_total`` rather than
slowing or failing predictions. A normal shutdown (SIGTERM) flushes what is queued.
"""

from __future__ import annotations

import atexit
import datetime as dt
import gzip
import logging
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson

from churn.errors import ChurnError
from churn.predictions.records import COLUMNS, DEFAULT_VARIANT, JSONL_SUFFIX, Scored, object_name
from churn.storage import Location, write_object
from churn.storage.sigv4 import S3Target

log = logging.getLogger(__name__)


def encode_jsonl(items: Sequence[Scored], model_name: str, model_version: str, source: str) -> dict[str, bytes]:
    """The records of ``items`` as one gzipped JSON-lines body per UTC day they were scored."""
    lines: dict[str, list[bytes]] = {}
    for item in items:
        when = dt.datetime.fromtimestamp(round(item.scored_at * 1000) / 1000, dt.UTC)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        ids = item.customer_ids if item.customer_ids is not None else [None] * len(item.probabilities)
        day_lines = lines.setdefault(when.strftime("%Y-%m-%d"), [])
        for customer, probability, label in zip(ids, item.probabilities.tolist(), item.labels.tolist(), strict=True):
            version = item.model_version or model_version
            answer = (probability, int(label), source, item.variant)
            record = (item.request_id, customer, stamp, model_name, version, *answer)
            day_lines.append(orjson.dumps(dict(zip(COLUMNS, record, strict=True))))
    # Level 1: a day's log is compacted to parquet later; speed matters more than bytes here.
    return {day: gzip.compress(b"\n".join(rows) + b"\n", compresslevel=1) for day, rows in sorted(lines.items())}


def write_jsonl_objects(bodies: dict[str, bytes], root: str, source: str, target: S3Target | None = None) -> list[str]:
    """Write one object per day (locally atomically, on S3 with one PUT); return the paths or URIs written.

    Raises:
        ChurnError: The store refused or could not be reached.

    """
    where = Location.parse(root)
    if where.is_s3:
        target = target or S3Target.from_env()
    return [
        write_object(where, object_name(day, source, JSONL_SUFFIX), body, what="the prediction log", target=target)
        for day, body in bodies.items()
    ]


def check_writer(root: str) -> None:
    """Fail now, with a clear message, when the log at ``root`` could not be written (S3 credentials)."""
    if Location.parse(root).is_s3:
        S3Target.from_env()


class PredictionLogger:
    """A bounded queue of answers and a background thread that writes them in batches.

    Args:
        root: Folder or ``s3://`` prefix of the log.
        model_name: Name of the served model.
        model_version: Its version.
        flush_seconds: Longest time an answer waits in memory before it is written.
        max_queue: Most answers held in memory; beyond it, answers are dropped and counted.
        source: ``online`` for the transformer.
        variant: Who gives the answers :meth:`record` gets (``champion``, or ``canary`` on a canary's pods).

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
        variant: str = DEFAULT_VARIANT,
    ) -> None:
        if flush_seconds <= 0:
            raise ChurnError(f"prediction log: flush interval must be > 0 seconds, got {flush_seconds}")
        self.root = str(root)
        self.model_name = model_name
        self.model_version = model_version
        self.flush_seconds = flush_seconds
        self.source = source
        self.variant = variant
        self._queue: queue.Queue[Scored] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._target = S3Target.from_env() if Location.parse(self.root).is_s3 else None
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.written = 0
        self.failed_writes = 0

    def start(self) -> PredictionLogger:
        """Start the writer thread; a normal interpreter exit flushes what is queued."""
        import churn.predictions.metrics  # noqa: F401  (imported here, not on the writer thread's first flush)

        self._thread.start()
        atexit.register(self.close)
        return self

    def record(
        self,
        request_id: str,
        customer_ids: Sequence[str] | None,
        probabilities: np.ndarray,
        labels: np.ndarray,
        *,
        variant: str | None = None,
        model_version: str | None = None,
    ) -> None:
        """Queue one answered request (never blocks; drops and counts when the queue is full).

        ``variant`` says who answered (the logger's own when None); ``model_version`` the
        version that did when it is not the logger's (a shadow's answer carries its version).
        """
        who = variant or self.variant
        scored = Scored(request_id, customer_ids, probabilities, labels, time.time(), who, model_version)
        try:
            self._queue.put_nowait(scored)
        except queue.Full:
            from churn.predictions.metrics import PREDICTION_LOG_DROPPED

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
        from churn.predictions.metrics import PREDICTION_LOG_DROPPED, PREDICTION_LOG_RECORDS

        items = self._drain()
        if not items:
            return 0
        count = sum(len(item.probabilities) for item in items)
        try:
            bodies = encode_jsonl(items, self.model_name, self.model_version, self.source)
            write_jsonl_objects(bodies, self.root, self.source, self._target)
        except ChurnError as error:  # the store is down: count and carry on, never fail predictions
            self.failed_writes += 1
            PREDICTION_LOG_DROPPED.inc(count)
            log.warning("%s (%d records dropped)", error, count)
            return 0
        self.written += count
        PREDICTION_LOG_RECORDS.inc(count)
        return count

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
