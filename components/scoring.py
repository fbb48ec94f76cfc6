"""Scoring components: fetch the customer base, validate it, score it with the champion, publish the table."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def load_base(base: Output[Dataset], source_uri: str = "", latest_only: bool = False) -> str:
    """Copy the customer base (file, folder of parts or s3://; empty: the raw folder's newest day) into parts."""
    from churn.config import get_settings
    from churn.stages import scoring

    info = scoring.load_base(source_uri, base.path, latest_only=latest_only, raw_dir=get_settings().raw_dir)
    base.metadata.update(info)
    return str(info["source"])


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate_base(base: Input[Dataset], report: Output[Artifact], min_rows: int = 1, pushgateway_url: str = ""):
    """Validate every part against the schema; an invalid base fails the run (pushed as a failed scoring run)."""
    from churn.config import get_settings
    from churn.stages import scoring

    gateway = pushgateway_url or get_settings().monitoring.pushgateway_url or ""
    scoring.validate_base(base.path, report.path, min_rows=min_rows, pushgateway_url=gateway)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def score_base(
    base: Input[Dataset],
    scored: Output[Dataset],
    metrics: Output[Metrics],
    tracking_uri: str = "",
    model_name: str = "churn-model",
    alias: str = "champion",
    reasons: bool = True,
    pushgateway_url: str = "",
    engine: str = "pandas",
    source_uri: str = "",
) -> str:
    """Score the base with models:/<model_name>@<alias> (its own features, threshold, deciles); return the version.

    engine: pandas or dask (empty: CHURN_ENGINE); on dask an s3:// source_uri is read by the workers directly.
    """
    from churn.config import get_settings
    from churn.stages import scoring

    settings = get_settings()
    result = scoring.score(
        base.path,
        scored.path,
        tracking_uri=tracking_uri or settings.tracking_uri,
        model_name=model_name,
        alias=alias,
        reasons=reasons,
        part_rows=settings.scoring.part_rows,
        method=settings.scoring.reasons_method,
        pushgateway_url=pushgateway_url or settings.monitoring.pushgateway_url or "",
        engine=engine or settings.engine,
        source_uri=source_uri,
    )
    for name in ("rows", "churned", "seconds"):
        metrics.log_metric(name, float(result[name]))
    metrics.log_metric("probability_mean", scoring.probability_mean(result))
    scored.metadata.update({"model_version": result["model_version"], "rows": result["rows"]})
    return str(result["model_version"])


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def publish_scored(
    scored: Input[Dataset], destination: str = "", pushgateway_url: str = "", log_predictions: bool = True
) -> str:
    """Commit the scored table (folder or s3://; empty: data/scored), log its predictions, push the metrics.

    The predictions go to CHURN_PERFORMANCE__PREDICTION_LOG_URI (default data/predictions).
    """
    from churn.config import get_settings
    from churn.stages import scoring

    settings = get_settings()
    result = scoring.publish(
        scored.path,
        destination or settings.scored_uri,
        pushgateway_url=pushgateway_url or settings.monitoring.pushgateway_url or "",
        job=settings.scoring.push_job,
        timeout=settings.monitoring.push_timeout_seconds,
        prediction_log=settings.prediction_log_uri if log_predictions else "",
    )
    return str(result["destination"])
