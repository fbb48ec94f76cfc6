"""The record of the last retraining that monitoring started: the fact behind the cooldown and the running rule.

Monitoring reads MLflow as a read-only user, so it cannot tag a run there; it can write to
the data folder or bucket (its S3 user), so the record is one small JSON object,
``retraining.json``, under ``CHURN_MONITORING__RETRAINING_RECORD_URI`` (a folder or
``s3://`` prefix; ``data_dir/monitoring`` by default), written whole through
:mod:`churn.storage`. Each retraining replaces it: only the last one matters to the rules
(:func:`churn.stages.monitoring.retraining_reason`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, replace

from churn.errors import ChurnError
from churn.storage import Location, object_exists, read_object, write_object

RECORD_NAME = "retraining.json"
#: A local run writes "running" before it starts and its outcome when it ends.
RUNNING = "running"
#: A run submitted to KFP: whether it still runs (or rolls out) is KFP's to say.
SUBMITTED = "submitted"
FAILED = "failed"


@dataclass(frozen=True)
class RetrainingRecord:
    """One retraining that monitoring started.

    Attributes:
        day: The monitoring day it was started on (the run's ``as_of``; the cooldown counts from it).
        started_at: When it was started, UTC, ISO 8601.
        reason: The alerts that called for it.
        champion_version: The champion then (the version whose cohorts alerted), if known.
        mode: ``local`` or ``kfp``.
        status: ``running`` or ``submitted`` until known, then ``promoted``, ``rejected`` or ``failed``.
        run: What was started: ``KFP run <id>`` or the local run's outcome.

    """

    day: dt.date
    started_at: str
    reason: str
    champion_version: str | None
    mode: str
    status: str
    run: str = ""

    @classmethod
    def start(cls, day: dt.date, reason: str, champion_version: str | None, mode: str) -> RetrainingRecord:
        """A record of a retraining started now (status ``running``)."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return cls(day, now, reason, champion_version, mode, RUNNING)

    def ended(self, status: str, run: str = "") -> RetrainingRecord:
        """The same record with its outcome (or, for KFP, ``submitted`` and the run)."""
        return replace(self, status=status, run=run or self.run)

    @property
    def started(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.started_at)

    def to_dict(self) -> dict[str, str | None]:
        return {**asdict(self), "day": self.day.isoformat()}


def record_location(root: str | os.PathLike[str]) -> Location:
    """Where the record lives under ``root`` (a folder or ``s3://`` prefix)."""
    return Location.parse(root).folder().join(RECORD_NAME)


def read_record(root: str | os.PathLike[str]) -> RetrainingRecord | None:
    """The last retraining recorded under ``root``; None when there was none.

    Raises:
        ChurnError: The record exists but cannot be read or is not a record.

    """
    where = record_location(root)
    if not object_exists(where):
        return None
    try:
        fields = json.loads(read_object(where))
        return RetrainingRecord(**{**fields, "day": dt.date.fromisoformat(fields["day"])})
    except (ValueError, TypeError, KeyError) as exc:
        raise ChurnError(f"{where} is not a retraining record ({exc}): remove it to start afresh") from None


def write_record(root: str | os.PathLike[str], record: RetrainingRecord) -> str:
    """Write ``record`` whole as the last retraining under ``root``; return where."""
    body = json.dumps(record.to_dict(), indent=2).encode()
    return write_object(root, RECORD_NAME, body, what="the retraining record")
