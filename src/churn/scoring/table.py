"""The scored table: parquet parts under a folder or an ``s3://`` prefix, committed by a manifest.

A table at ``LOCATION`` is what ``LOCATION/_manifest.json`` says it is: the manifest lists
the parts of the last committed run, all under ``LOCATION/run-<id>/``. A run writes its
parts under a fresh ``run-<id>/`` prefix that no manifest names yet, then replaces the
manifest in one step (an atomic rename on a filesystem, a single PUT on S3), and only then
deletes the parts of the run before the previous one: the previous run's parts stay, so a
reader that read the old manifest just before the commit can still read its parts. A
reader that goes through the manifest (:func:`read_table`) sees the previous table or the
new one, never a mix or half a part; a run that fails at any point before the manifest
leaves the previous table as it was and removes what it had written.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn.errors import ChurnError
from churn.storage import Location, atomic_path, s3, write_object

MANIFEST = "_manifest.json"
FORMAT = "churn-scored-table/1"


@dataclass
class TableWriter:
    """Write one run of a scored table; nothing is visible to readers until :meth:`commit`.

    Use as a context manager: leaving the block by an exception calls :meth:`abort`.

    Args:
        location: Local folder or ``s3://bucket/prefix``.

    """

    location: str
    run_id: str = field(default_factory=lambda: f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}")
    parts: list[str] = field(default_factory=list)
    rows: int = 0
    committed: bool = False

    @property
    def s3(self) -> bool:
        """Whether the table is on S3 (else in a local folder)."""
        return self.where.is_s3

    @property
    def where(self) -> Location:
        """The table's folder or ``s3://`` prefix, parsed."""
        return Location.parse(self.location)

    @property
    def prefix(self) -> str:
        """The run's own prefix, relative to the table location."""
        return f"run-{self.run_id}"

    def __enter__(self) -> TableWriter:
        if not self.s3:
            path = Path(self.location)
            if path.exists() and not path.is_dir():
                raise ChurnError(f"scored table location {path} is a file, not a folder")
            self._staging().mkdir(parents=True, exist_ok=False)
        else:
            Location.parse(self.location)
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if not self.committed:
            self.abort()

    def _staging(self) -> Path:
        return Path(self.location) / f".staging-{self.run_id}"

    def write(self, table: pa.Table) -> str:
        """Write one part (an Arrow table); return its name relative to the table location."""
        name = f"{self.prefix}/part-{len(self.parts):05d}.parquet"
        if self.s3:
            sink = io.BytesIO()
            pq.write_table(table, sink)
            write_object(self.where, name, sink.getvalue())
        else:
            pq.write_table(table, self._staging() / Path(name).name)
        self.parts.append(name)
        self.rows += table.num_rows
        return name

    def commit(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """Publish the parts written so far as the table (replacing the previous run's), then clean up."""
        previous = _manifest_or_none(self.location)
        manifest = {
            "format": FORMAT,
            "run_id": self.run_id,
            "previous_run_id": None if previous is None else previous.get("run_id"),
            "committed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "rows": self.rows,
            "parts": self.parts,
            **metadata,
        }
        body = json.dumps(manifest, indent=2, default=str).encode()
        if self.s3:
            try:
                s3.put_bytes(self.where.folder().join(MANIFEST), body)
            except Exception as exc:  # boto3 raises many kinds; each means "cannot write it"
                raise ChurnError(f"cannot write the manifest of {self.location}: {exc}") from exc
        else:
            root = Path(self.location)
            self._staging().rename(root / self.prefix)  # same folder: one atomic rename
            with atomic_path(root / MANIFEST) as tmp:
                tmp.write_bytes(body)
        self.committed = True
        retired = None if previous is None else previous.get("previous_run_id")
        if retired and retired != self.run_id:
            _delete_run(self.location, f"run-{retired}")
        return manifest

    def abort(self) -> None:
        """Remove every part this run wrote; the committed table is untouched."""
        _delete_run(self.location, self.prefix)  # on a filesystem: parts renamed before a failed manifest write
        if not self.s3:
            shutil.rmtree(self._staging(), ignore_errors=True)


def _delete_run(location: str, run_prefix: str) -> None:
    if (where := Location.parse(location)).is_s3:
        run = where.folder().join(f"{run_prefix}/")
        try:
            client = s3.s3_client()
            s3.delete_objects(run.bucket, s3.list_objects(run, client=client).keys, client=client)
        except Exception:  # cleanup is best effort: readers never look outside the manifest
            return
    else:
        shutil.rmtree(Path(location) / run_prefix, ignore_errors=True)


def _manifest_or_none(location: str) -> dict[str, Any] | None:
    try:
        return read_manifest(location)
    except ChurnError:
        return None


def _read_object(location: str, name: str, failure: str) -> bytes:
    try:
        body = s3.get_bytes(Location.parse(location).folder().join(name))
    except Exception as exc:  # boto3 raises many kinds; each means "cannot read it"
        raise ChurnError(f"{failure} ({exc})") from None
    return body


def read_manifest(location: str) -> dict[str, Any]:
    """The manifest of the committed table at ``location``.

    Raises:
        ChurnError: No table has been committed there, or its manifest is unreadable.

    """
    try:
        if Location.parse(location).is_s3:
            body = _read_object(location, MANIFEST, f"no scored table at {location}")
        else:
            file = Path(location) / MANIFEST
            if not file.is_file():
                raise ChurnError(f"no scored table at {location} ({MANIFEST} is missing)")
            body = file.read_bytes()
        manifest = json.loads(body)
    except (ValueError, OSError) as exc:
        raise ChurnError(f"the manifest of the scored table at {location} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ChurnError(f"{location}/{MANIFEST} is not a {FORMAT} manifest")
    return manifest


def read_table(location: str) -> pd.DataFrame:
    """The committed scored table at ``location``, read through its manifest."""
    manifest = read_manifest(location)
    frames = []
    for part in manifest["parts"]:
        if Location.parse(location).is_s3:
            body = _read_object(location, part, f"part {part} of the scored table at {location} is unreadable")
            frames.append(pq.read_table(io.BytesIO(body)))
        else:
            frames.append(pq.read_table(Path(location) / part))
    if not frames:
        return pd.DataFrame()
    frame: pd.DataFrame = pa.concat_tables(frames).to_pandas(date_as_object=False)
    return frame
