"""The prediction log's record format and layout, on the standard library (the serving image imports it).

Each record is one scored customer: ``request_id`` (the V2 request id, or the batch run's
id), ``customer_id`` (null when the caller sent none), ``scored_at`` (UTC), ``model_name``,
``model_version``, ``churn_probability``, ``churn_label``, ``source`` (``online`` or
``batch``) and ``variant`` (who answered: ``champion``, ``canary``, or ``shadow`` for a shadow
model's answer that the caller never saw; objects written before the column existed read as
``champion``). Records go to a local folder or an ``s3://`` prefix, partitioned by the UTC day
they were scored, one object per written batch::

    <root>/date=2026-01-06/batch-20260106T101500.123Z-<uuid>.parquet      (batch scoring)
    <root>/date=2026-01-06/online-20260106T101500.123Z-<uuid>.jsonl.gz    (the transformer)
    <root>/date=2026-01-06/compacted.parquet                               (churn predictions compact)
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: Columns of every prediction-log record, in this order (churn.predictions.log.SCHEMA types them).
COLUMNS = (
    "request_id",
    "customer_id",
    "scored_at",
    "model_name",
    "model_version",
    "churn_probability",
    "churn_label",
    "source",
    "variant",
)
SOURCES = ("online", "batch")
#: Who gave an answer: the champion, a canary taking a share of the traffic, or a shadow (logged, never returned).
VARIANTS = ("champion", "canary", "shadow")
#: The variant of every answer logged before the column existed, and of batch scoring.
DEFAULT_VARIANT = "champion"
#: Suffix of the online writer's objects (gzipped JSON lines); the batch writer's are ``.parquet``.
JSONL_SUFFIX = ".jsonl.gz"
#: A day's compacted object: every record of the day's small objects, in one parquet file.
COMPACTED = "compacted.parquet"


@dataclass(frozen=True)
class Scored:
    """One answered request as the transformer saw it (what the queue holds)."""

    request_id: str
    customer_ids: Sequence[str] | None
    probabilities: np.ndarray
    labels: np.ndarray
    scored_at: float  # unix seconds
    #: Who answered (one of :data:`VARIANTS`).
    variant: str = DEFAULT_VARIANT
    #: The version that answered when it is not the writer's own (a shadow's, from its V2 response).
    model_version: str | None = None


def object_name(day: str, source: str, suffix: str) -> str:
    """``date=<day>/<source>-<UTC stamp>-<random>.<suffix>``: unique, sortable by write time."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"
    return f"date={day}/{source}-{stamp}-{uuid.uuid4().hex[:12]}{suffix}"


def is_log_object(name: str) -> bool:
    """Whether a file name is a log object a reader takes (not hidden, a known suffix)."""
    return not name.startswith(".") and name.endswith((".parquet", JSONL_SUFFIX))
