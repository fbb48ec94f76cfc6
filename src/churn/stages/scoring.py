"""The stages of the scoring pipeline as plain functions on paths: fetch, validate, score, publish.

Each KFP component in ``components/scoring.py`` calls one of these. Between the score and
publish steps the scored table travels as a committed table in a local folder (the KFP
artifact); the publish step re-commits it where readers look (a folder or ``s3://``),
with the same manifest-last rule, then pushes the run's metrics.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from churn.engine import engine_for
from churn.errors import ChurnError
from churn.scoring.batch import PART_ROWS, base_parts, fetch_model, input_parts, validate_parts
from churn.storage import write_json


def load_base(
    source_uri: str, out_dir: str | Path, *, latest_only: bool = False, raw_dir: str | Path = ""
) -> dict[str, Any]:
    """Copy the customer base to score into ``out_dir`` (one file per part).

    Args:
        source_uri: A file, a folder of parts or an ``s3://`` object or prefix; empty: the newest
            ``customers_YYYYMMDD`` file of ``raw_dir`` (the raw folder holds days, not parts of one base).
        out_dir: Local folder for the parts.
        latest_only: For a folder or prefix, take only its newest ``customers_YYYYMMDD`` file (the
            day's increment the data pipeline published) instead of every part.
        raw_dir: The local raw-data folder.

    """
    from churn.data.increments import latest_increment

    source = source_uri or str(raw_dir)
    latest_only = latest_only or not source_uri
    if latest_only and (source.endswith("/") or not Path(source).is_file()) and not _is_file_uri(source):
        source = latest_increment(source)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    staged = out.with_name(out.name + ".download")
    parts = input_parts(source, staged)
    out.mkdir(parents=True)
    for i, part in enumerate(parts):
        shutil.copyfile(part, out / f"part-{i:05d}{_suffix(part)}")
    shutil.rmtree(staged, ignore_errors=True)
    return {"source": source, "parts": len(parts)}


def _is_file_uri(source: str) -> bool:
    return source.lower().endswith((".csv", ".parquet", ".pq"))


def _suffix(path: Path) -> str:
    return ".csv" if path.suffix.lower() == ".csv" else ".parquet"


def validate_base(
    base_dir: str | Path, report: str | Path, *, min_rows: int = 1, pushgateway_url: str = ""
) -> dict[str, Any]:
    """Validate every part of the base; on failure push ``churn_scoring_failed 1`` (when a gateway is set) and raise."""
    try:
        rows = validate_parts(base_parts(base_dir), min_rows=min_rows)
    except ChurnError as error:
        write_json({"valid": False, "error": str(error)}, report)
        _push_failure(pushgateway_url, error)
        raise
    result = {"valid": True, "rows": rows, "parts": len(base_parts(base_dir))}
    write_json(result, report)
    return result


def score(
    base_dir: str | Path,
    table_dir: str | Path,
    *,
    tracking_uri: str,
    model_name: str,
    alias: str = "champion",
    reasons: bool = True,
    part_rows: int = PART_ROWS,
    pushgateway_url: str = "",
    method: str = "shap",
    engine: str = "pandas",
    source_uri: str = "",
) -> dict[str, Any]:
    """Score the validated base with ``models:/<model_name>@<alias>`` into a committed table in ``table_dir``.

    With ``engine="dask"`` the base's parquet parts are scored partition by partition on a
    Dask cluster (:mod:`churn.engine.dask.scoring`), into the same table: read from ``source_uri``
    when it is on S3 (where every worker can read it), else from ``base_dir``.
    """
    try:
        chosen = engine_for(engine)
        model_dir, version = fetch_model(f"models:/{model_name}@{alias}", tracking_uri)
        summary = chosen.score_base(
            base_dir,
            str(table_dir),
            model_dir=model_dir,
            model_name=model_name,
            model_version=version,
            reasons=reasons,
            method=method,
            part_rows=part_rows,
            source_uri=source_uri,
        )
    except ChurnError as error:
        _push_failure(pushgateway_url, error)
        raise
    stats = summary.stats()
    write_json(stats, Path(table_dir) / "_stats.json")
    return {"model_version": version, **stats}


def publish(
    table_dir: str | Path,
    destination: str,
    *,
    pushgateway_url: str = "",
    job: str = "churn-scoring",
    timeout: float = 10,
    prediction_log: str = "",
) -> dict[str, Any]:
    """Commit the scored table at ``destination`` (folder or ``s3://``), log its predictions, push the run's metrics.

    With ``prediction_log`` (a folder or ``s3://`` prefix), every scored row is recorded there
    too (run id, customer, time, model and version, probability, label), after the commit:
    the performance monitoring joins them with the labels that arrive later.
    """
    import json

    import pyarrow.parquet as pq

    from churn.scoring.table import TableWriter, read_manifest

    start = time.perf_counter()
    try:
        manifest = read_manifest(str(table_dir))
        stats = json.loads((Path(table_dir) / "_stats.json").read_text())
        with TableWriter(destination) as writer:
            for part in manifest["parts"]:
                writer.write(pq.read_table(Path(table_dir) / part))
            kept = {k: v for k, v in manifest.items() if k not in ("format", "run_id", "committed_at", "rows", "parts")}
            committed = writer.commit(kept)
    except ChurnError as error:
        _push_failure(pushgateway_url, error)
        raise
    if prediction_log:
        import pandas as pd

        from churn.predictions.log import write_prediction_log

        for part in manifest["parts"]:
            write_prediction_log(
                pd.read_parquet(Path(table_dir) / part, columns=["customer_id", "churn_probability", "churn_label"]),
                prediction_log,
                run_id=committed["run_id"],
                model_name=str(manifest["model_name"]),
                model_version=str(manifest["model_version"]),
            )
    seconds = float(stats["seconds"]) + time.perf_counter() - start
    if pushgateway_url:
        from churn.scoring.publish import push_scoring

        push_scoring(
            pushgateway_url,
            {**stats, "seconds": seconds, "model_version": manifest["model_version"]},
            job=job,
            timeout=timeout,
        )
    return {"destination": destination, "run_id": committed["run_id"], "rows": committed["rows"], "seconds": seconds}


def _push_failure(gateway: str, error: ChurnError) -> None:
    if not gateway:
        return
    from churn.scoring.publish import push_scoring_failure

    try:
        push_scoring_failure(gateway)
    except ChurnError as push_error:
        error.add_note(str(push_error))


def probability_mean(stats: dict[str, Any]) -> float:
    """Mean churn probability of a run (from its summed probabilities)."""
    rows = int(stats["rows"])
    return float(stats["probability_sum"]) / rows if rows else float("nan")
