"""Monitoring components: load the day's increment, validate it, check it against the champion, retrain."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def load_current(current: Output[Dataset], source_uri: str = "", engine: str = "pandas") -> str:
    """Copy the increment to check (path or s3://; empty: the latest customers_YYYYMMDD); return its source.

    A folder of parts (and on the ``dask`` engine a parquet file) is checked on a Dask cluster.
    """
    from churn.config import get_settings
    from churn.stages import monitoring

    info = monitoring.load_current(current.path, source_uri=source_uri, raw_dir=get_settings().raw_dir, engine=engine)
    current.metadata.update(info)
    return str(info["source"])


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate_current(
    current: Input[Dataset],
    report: Output[Artifact],
    summary: Output[Markdown],
    min_rows: int = 100,
    pushgateway_url: str = "",
):
    """Validate the increment; invalid or empty data fails the run and is pushed as a failed monitoring run."""
    from churn.config import get_settings
    from churn.stages import monitoring

    gateway = pushgateway_url or get_settings().monitoring.pushgateway_url
    source = current.metadata.get("source")  # the user's file, not this task's copy of it
    monitoring.validate_current(
        current.path, report.path, summary=summary.path, min_rows=min_rows, pushgateway_url=gateway, source=source
    )


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def check_drift(
    current: Input[Dataset],
    report: Output[Artifact],
    summary: Output[Markdown],
    evidently: Output[HTML],
    metrics: Output[Metrics],
    tracking_uri: str = "",
    model_name: str = "churn-model",
    alias: str = "champion",
    pushgateway_url: str = "",
) -> str:
    """Score the increment with the champion, check it against the champion's reference, publish the metrics.

    Returns the verdict ("ok", "warn" or "alert"); the flagged features are in the report's metadata.
    """
    from churn.config import get_settings
    from churn.stages import monitoring

    settings = get_settings()
    result = monitoring.monitor(
        current.path,
        json_path=report.path,
        markdown_path=summary.path,
        html_path=evidently.path,
        tracking_uri=tracking_uri or settings.tracking_uri,
        model_uri=f"models:/{model_name}@{alias}",
        pushgateway_url=pushgateway_url or settings.monitoring.pushgateway_url,
        timeout=settings.mlflow.timeout_seconds,
        retries=settings.mlflow.max_retries,
        source=current.metadata.get("source"),  # the user's file, not this task's copy of it
    )
    for name, value in monitoring.monitoring_metrics(result).items():
        metrics.log_metric(name, value)
    report.metadata.update({"verdict": result["verdict"], "flagged": result["flagged"]})
    return str(result["verdict"])


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def check_performance(
    report: Output[Artifact],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    tracking_uri: str = "",
    model_name: str = "churn-model",
    alias: str = "champion",
    prediction_log_uri: str = "",
    labels_uri: str = "",
    as_of: str = "",
    pushgateway_url: str = "",
) -> str:
    """Join the prediction log with the labels that have arrived: realized and estimated (CBPE) performance per cohort.

    Returns the verdict ("ok", "warn" or "alert"); each cohort's line is in the report's metadata.
    """
    from churn.config import get_settings
    from churn.monitoring.performance import monitor_performance

    settings = get_settings()
    result = monitor_performance(
        json_path=report.path,
        markdown_path=summary.path,
        tracking_uri=tracking_uri or settings.tracking_uri,
        model_uri=f"models:/{model_name}@{alias}",
        prediction_log_uri=prediction_log_uri or settings.prediction_log_uri,
        labels_uri=labels_uri or settings.labels_uri,
        as_of=as_of,
        pushgateway_url=pushgateway_url or settings.monitoring.pushgateway_url,
        timeout=settings.mlflow.timeout_seconds,
        retries=settings.mlflow.max_retries,
    )
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    report.metadata.update({"verdict": result.verdict, "cohorts": result.lines()})
    return result.verdict


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def compare_shadow(
    report: Output[Artifact],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    prediction_log_uri: str = "",
    labels_uri: str = "",
    as_of: str = "",
    window_days: int = 7,
    pushgateway_url: str = "",
) -> float:
    """Compare the shadow's logged answers with the champion's over the window ending ``as_of``; return the agreement.

    Label agreement, rank correlation, score PSI, top-decile overlap, estimated and realized ROC-AUC of each
    (``churn rollout compare``); pushed as ``churn_shadow_*``.
    """
    import datetime as dt

    from churn.config import get_settings
    from churn.data.generator import parse_date
    from churn.monitoring.report import write_report
    from churn.rollout.compare import compare_shadow as compare

    settings = get_settings()
    end = parse_date(as_of or None)
    result = compare(
        prediction_log_uri or settings.prediction_log_uri,
        labels_uri or settings.labels_uri,
        start=end - dt.timedelta(days=window_days - 1),
        end=end,
        pushgateway_url=pushgateway_url or settings.monitoring.pushgateway_url,
        push_timeout=settings.monitoring.push_timeout_seconds,
    )
    write_report(result, report.path, summary.path)
    for name in ("pairs", "label_agreement", "rank_correlation", "score_psi", "top_decile_overlap"):
        metrics.log_metric(name, float(getattr(result, name)))
    return result.label_agreement


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def trigger_retraining(
    verdict: str,
    performance: Input[Artifact],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    mode: str = "local",
    kfp_host: str = "",
    rows: int = 100_000,
    date: str = "",
    as_of: str = "",
    seed: int = 42,
    source_uri: str = "",
    n_jobs: int = 2,
    mlflow_tracking_uri: str = "",
    mlflow_experiment: str = "churn",
    model_name: str = "churn-model",
    gate_margin: float = 0.002,
    s3_secret: str = "",
    cluster_env: str = "",
    engine: str = "pandas",
) -> str:
    """On a drift alert or a realized alert on the champion's cohorts, start a training run unless held back.

    Held back while the last retraining runs (or rolls out) and within the cooldown
    (churn.stages.monitoring.retraining_reason); the summary says why. The gate decides promotion.
    """
    import json
    from pathlib import Path

    from churn.config import get_settings
    from churn.kfp.retrain import retrain_on_alert
    from churn.kfp.schedule import Release

    release = Release(get_settings().deploy.release)
    parameters = {
        "rows": rows,
        "date": date,
        "seed": seed,
        "source_uri": source_uri,
        "n_jobs": n_jobs,
        "mlflow_tracking_uri": mlflow_tracking_uri,
        "mlflow_experiment": mlflow_experiment,
        "model_name": model_name,
        "gate_margin": gate_margin,
        "engine": engine,
        "s3_secret": s3_secret,
        "cluster_env": cluster_env,
        # The training run's own MLflow users, not monitoring's read-only one.
        "mlflow_secret": release.mlflow_secret("pipeline"),
        "gate_secret": release.mlflow_secret("gate"),
    }
    report = json.loads(Path(performance.path).read_text())
    decision, started = retrain_on_alert(verdict, report, parameters, mode=mode, kfp_host=kfp_host, as_of=as_of)
    print(f"{decision.summary()} ({mode})")
    Path(summary.path).write_text(decision.markdown() + (f"\nStarted: {started}\n" if started else ""))
    for name, value in decision.metrics().items():
        metrics.log_metric(name, value)
    return started or decision.summary()


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def publish_increment(raw: Input[Dataset], date: str = "", destination: str = "") -> str:
    """Publish the validated increment as customers_YYYYMMDD.csv (a folder or s3:// prefix; empty: the raw folder)."""
    from churn.config import get_settings
    from churn.data import increments

    return increments.publish_increment(raw.path, date=date, destination=destination, raw_dir=get_settings().raw_dir)
