"""The data stages of the training pipeline (``components/data.py``): load, validate, split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from churn.engine import engine_for


def load_data(
    out: str | Path,
    *,
    source_uri: str = "",
    rows: int = 100_000,
    date: str = "",
    seed: int = 42,
    scenario: str = "none",
    churn_rate: float = 0.25,
    engine: str = "pandas",
) -> dict[str, Any]:
    """Generate a day's customers into ``out`` (CSV), or copy an existing export from ``source_uri``.

    ``source_uri`` may be a local path or ``s3://bucket/key`` (read with boto3, which
    honours ``AWS_*`` and ``AWS_ENDPOINT_URL``/``MLFLOW_S3_ENDPOINT_URL``). On the
    ``dask`` engine ``out`` is a folder of ``part-*.parquet`` (generated in bounded memory, or
    copied from a parquet folder, file or ``s3://`` prefix).
    """
    out = Path(out)
    chosen = engine_for(engine)
    if source_uri:
        chosen.ingest(source_uri, out)
        source = source_uri
    else:
        chosen.generate(out, rows=rows, date=date, seed=seed, scenario=scenario, churn_rate=churn_rate)
        source = f"generated ({rows} rows, seed {seed}, scenario {scenario})"
    fingerprint, size = chosen.fingerprint(out)
    return {"path": str(out), "source": source, "fingerprint": fingerprint, "bytes": size}


def validate(
    raw: str | Path,
    report: str | Path,
    *,
    summary: str | Path | None = None,
    min_rows: int = 100,
    source: str | None = None,
) -> dict[str, Any]:
    """Validate the raw export, write the JSON report (and a Markdown summary); raise after writing when invalid.

    ``source`` is what the report names as the data: the user's file or URI, not the
    pipeline's copy of it at ``raw``. A folder of parquet parts is validated on the Dask engine.
    """
    result = engine_for(None, raw).validate(raw, report, summary=summary, min_rows=min_rows, source=source)
    return dict(result.to_dict())


def split(
    raw: str | Path,
    outputs: dict[str, str | Path],
    *,
    seed: int = 42,
    validation_size: float = 0.15,
    test_size: float = 0.15,
) -> dict[str, int]:
    """Split a validated raw export 70/15/15 into parquet files, by a seeded hash of ``customer_id`` per class.

    The export was validated by the previous step; it is only parsed here (the schema
    checks are not paid twice), and a file that no longer parses still fails clearly. A folder
    of parquet parts is split on the Dask engine into folders: both engines put every customer
    in the same split (see :mod:`churn.training.split`).
    """
    return engine_for(None, raw).split(raw, outputs, seed=seed, validation_size=validation_size, test_size=test_size)
