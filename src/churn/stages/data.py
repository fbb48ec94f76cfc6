"""The data stages of the training pipeline (``components/data.py``): load, validate, split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from churn.data.files import write_raw
from churn.data.increments import fetch
from churn.errors import ChurnError
from churn.provenance import file_fingerprint

# Each task is a fresh interpreter that runs one step: heavy libraries (scikit-learn,
# pandera, MLflow) are imported by the functions that use them, not by every task.


ENGINES = ("pandas", "dask")


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
    from churn.data import iter_customer_blocks

    out = Path(out)
    check_engine(engine)
    if engine == "dask":
        from churn.scale import dataset
        from churn.scale import steps as dask_steps
        from churn.scale.generate import write_partitioned

        if source_uri:
            dask_steps.ingest(source_uri, out)
            source = source_uri
        else:
            # Generated on this process in bounded memory, then moved into place or uploaded for remote workers.
            local = out.with_name(f".{out.name}.generated")
            blocks = iter_customer_blocks(rows, date or None, seed=seed, scenario=scenario, churn_rate=churn_rate)
            dataset.publish_local(write_partitioned((b.frame for b in blocks), local), out)
            source = f"generated ({rows} rows, seed {seed}, scenario {scenario})"
        fingerprint, size = dataset.fingerprint(out)
        return {"path": str(out), "source": source, "fingerprint": fingerprint, "bytes": size}
    if source_uri:
        fetch(source_uri, out)
        source = source_uri
    else:
        blocks = iter_customer_blocks(rows, date or None, seed=seed, scenario=scenario, churn_rate=churn_rate)
        write_raw((b.frame for b in blocks), out, "csv")
        source = f"generated ({rows} rows, seed {seed}, scenario {scenario})"
    return {"path": str(out), "source": source, "fingerprint": file_fingerprint(out), "bytes": out.stat().st_size}


def check_engine(engine: str) -> None:
    """Refuse an engine other than ``pandas`` or ``dask``, naming it."""
    if engine not in ENGINES:
        raise ChurnError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


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
    from churn.validation import validate_and_report

    if Path(raw).is_dir():
        from churn.scale.validation import validate_and_report_dask

        report_ = validate_and_report_dask(raw, report, summary_path=summary, min_rows=min_rows, source=source)
        return report_.to_dict()
    _, result = validate_and_report(raw, report, summary_path=summary, min_rows=min_rows, source=source)
    return result.to_dict()


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
    of parquet parts is split on the Dask engine into folders (see :func:`churn.scale.steps.split`):
    both engines put every customer in the same split (see :mod:`churn.scale.split`).
    """
    if Path(raw).is_dir():
        from churn.scale import steps as dask_steps

        with dask_steps.engine_client(name="churn-split"):
            return dask_steps.split(raw, outputs, seed=seed, validation_size=validation_size, test_size=test_size)
    from churn.scale.split import SPLITS, hash_split_frame
    from churn.validation import DataValidationError, ValidationReport
    from churn.validation.reader import read_raw_file

    parsed = read_raw_file(raw)
    if parsed.frame is None or parsed.violations:
        raise DataValidationError(ValidationReport(source=str(raw), violations=parsed.violations))
    frame = parsed.frame
    parts = hash_split_frame(frame, seed=seed, validation_size=validation_size, test_size=test_size)
    for name in SPLITS:
        write_raw([parts[name]], outputs[name], "parquet")
    return {f"{name}_rows": len(parts[name]) for name in SPLITS}
