"""Delayed churn labels: the outcome of scored customers, arriving some days after the score.

In a real shop a customer's churn label is known only weeks after the day they were
scored. To exercise that loop locally, the outcomes of a day's export (the generator draws
them with the customers) are published as ``labels_YYYYMMDD.csv``, dated ``delay_days``
after the export's snapshot date. A monitoring run "as of" a date sees only the label
files dated on or before it, so labels arrive as time passes, exactly as in production.

A label file holds ``customer_id``, ``scored_date`` (the snapshot the customer was scored
on), ``label_date`` and ``churned`` (0/1).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pandas as pd

from churn.errors import ChurnError
from churn.storage import Location, s3, write_object

LABEL_COLUMNS = ("customer_id", "scored_date", "label_date", "churned")
_LABELS = re.compile(r"labels_(\d{8})\.csv$")


def labels_file_name(day: dt.date) -> str:
    """``labels_YYYYMMDD.csv``: the outcomes that arrive on ``day``."""
    return f"labels_{day:%Y%m%d}.csv"


def outcomes(frame: pd.DataFrame, delay_days: int) -> pd.DataFrame:
    """The label rows of a raw export: each customer's outcome, due ``delay_days`` after their snapshot.

    Raises:
        ChurnError: The frame lacks ``customer_id``, ``snapshot_date`` or ``churned``, or
            the delay is negative.

    """
    missing = [c for c in ("customer_id", "snapshot_date", "churned") if c not in frame.columns]
    if missing:
        raise ChurnError(f"labels: the export has no column {', '.join(map(repr, missing))}")
    if delay_days < 0:
        raise ChurnError(f"labels: the delay must be >= 0 days, got {delay_days}")
    scored = pd.to_datetime(frame["snapshot_date"]).dt.normalize()
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str),
            "scored_date": scored.dt.date,
            "label_date": (scored + pd.Timedelta(days=delay_days)).dt.date,
            "churned": frame["churned"].astype("int8"),
        }
    )


def publish_labels(frame: pd.DataFrame, delay_days: int, destination: str | Path) -> list[str]:
    """Write the outcomes of ``frame`` as ``labels_YYYYMMDD.csv`` files (one per label date).

    Args:
        frame: A raw export with its ``churned`` outcomes.
        delay_days: Days between the snapshot and the outcome's arrival.
        destination: A folder or ``s3://bucket/prefix``.

    Returns:
        The paths or URIs written (each written whole: temp file and rename, or one S3 PUT).

    """
    rows = outcomes(frame, delay_days)
    written = []
    for day in sorted(set(rows["label_date"])):
        part = rows[rows["label_date"] == day]
        written.append(write_object(destination, labels_file_name(day), part.to_csv(index=False).encode()))
    return written


def read_labels(location: str | Path, *, as_of: dt.date | None = None) -> pd.DataFrame:
    """Every label that has arrived by ``as_of`` (all when None), from the ``labels_*.csv`` files of a folder or prefix.

    A customer labelled twice keeps the latest label.

    Raises:
        ChurnError: A label file cannot be read or lacks a column.

    """
    where = str(location)
    frames = []
    for day, name, text in _label_files(where):
        if as_of is not None and day > as_of:
            continue
        try:
            part = pd.read_csv(io.StringIO(text), dtype={"customer_id": str})
        except (ValueError, pd.errors.ParserError) as exc:
            raise ChurnError(f"label file {name} cannot be read: {exc}") from None
        missing = [c for c in LABEL_COLUMNS if c not in part.columns]
        if missing:
            raise ChurnError(f"label file {name} has no column {', '.join(map(repr, missing))}")
        bad = ~part["churned"].isin((0, 1))
        if bad.any():
            raise ChurnError(f"label file {name}: 'churned' must be 0 or 1 (row {int(bad.to_numpy().argmax())})")
        frames.append(part[list(LABEL_COLUMNS)])
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LABEL_COLUMNS})
    labels = pd.concat(frames, ignore_index=True)
    for column in ("scored_date", "label_date"):
        labels[column] = pd.to_datetime(labels[column]).dt.date
    labels["churned"] = labels["churned"].astype("int8")
    return labels.sort_values("label_date", kind="stable").drop_duplicates("customer_id", keep="last")


def _label_files(where: str) -> list[tuple[dt.date, str, str]]:
    found = []
    location = Location.parse(where)
    if location.is_s3:
        client = s3.s3_client()
        folder = location.folder()
        try:
            for key in s3.list_objects(folder, recursive=False, client=client).keys:
                if m := _LABELS.fullmatch(key.removeprefix(folder.key)):
                    found_at = Location.s3(folder.bucket, key)
                    body = s3.get_bytes(found_at, client=client).decode()
                    found.append((dt.datetime.strptime(m.group(1), "%Y%m%d").date(), str(found_at), body))
        except Exception as exc:
            raise ChurnError(f"cannot read the labels at {where}: {exc}") from exc
        return found
    folder_path = location.path
    for path in sorted(folder_path.glob("labels_*.csv")) if folder_path.is_dir() else []:
        if m := _LABELS.fullmatch(path.name):
            found.append((dt.datetime.strptime(m.group(1), "%Y%m%d").date(), str(path), path.read_text()))
    return found
