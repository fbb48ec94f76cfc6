"""The daily monitoring pipeline: increment -> validation -> drift checks against the champion -> retraining."""

from components.monitoring import (
    check_drift,
    check_performance,
    compare_shadow,
    load_current,
    trigger_retraining,
    validate_current,
)
from kfp import dsl

from pipelines._cluster import (
    CLUSTER_ENV,
    MLFLOW_READER_SECRET,
    PUSHGATEWAY_KEYS,
    PUSHGATEWAY_SECRET,
    S3_SECRET,
    use_cluster_env,
    use_secret_env,
)


@dsl.pipeline(
    name="churn-monitoring",
    description="Check the latest daily increment against the @champion's reference profile (PSI, chi-square, "
    "churn rate, prediction drift, ROC-AUC), join the prediction log with the labels that have arrived (realized "
    "and estimated performance per daily cohort), publish the metrics to the Pushgateway and, on an alert, retrain.",
)
def monitoring_pipeline(
    current_uri: str = "",
    min_rows: int = 100,
    mlflow_tracking_uri: str = "",
    model_name: str = "churn-model",
    pushgateway_url: str = "",
    retrain_on_alert: bool = False,
    retrain_mode: str = "local",
    kfp_host: str = "",
    retrain_rows: int = 100_000,
    retrain_source_uri: str = "",
    date: str = "",
    seed: int = 42,
    n_jobs: int = 2,
    mlflow_experiment: str = "churn",
    gate_margin: float = 0.002,
    prediction_log_uri: str = "",
    labels_uri: str = "",
    as_of: str = "",
    engine: str = "pandas",
    shadow_active: bool = False,
    shadow_window_days: int = 7,
    s3_secret: str = S3_SECRET,
    cluster_env: str = CLUSTER_ENV,
    mlflow_secret: str = MLFLOW_READER_SECRET,
    pushgateway_secret: str = PUSHGATEWAY_SECRET,
) -> str:
    """Monitor one daily increment and, optionally, retrain on an alert.

    Args:
        current_uri: The increment to check (path or s3://), or a folder or s3:// prefix ending in /
            (its latest customers_YYYYMMDD file); empty: the latest in the raw-data folder.
        min_rows: Fewest rows a valid increment may have.
        mlflow_tracking_uri: MLflow tracking URI (empty: CHURN_MLFLOW__TRACKING_URI or the local default).
        model_name: Registered model whose @champion is monitored.
        pushgateway_url: Prometheus Pushgateway (empty: CHURN_MONITORING__PUSHGATEWAY_URL; unset: no push).
        retrain_on_alert: Start a training run when the drift verdict, or the realized performance of the
            champion's own cohorts, is "alert" (not while one runs, nor within CHURN_MONITORING__RETRAIN_COOLDOWN_DAYS).
        retrain_mode: "local" (run it in-process with the local runner) or "kfp" (submit to the KFP API).
        kfp_host: KFP API endpoint for retrain_mode "kfp" (empty: the in-cluster default).
        retrain_rows: Rows the retraining run generates when no retrain_source_uri is given.
        retrain_source_uri: Export to retrain on (path or s3://).
        date: Snapshot date YYYY-MM-DD of the retraining data (empty: today).
        seed: Seed of the retraining run.
        n_jobs: Threads per estimator of the retraining run.
        mlflow_experiment: MLflow experiment of the retraining run.
        gate_margin: ROC-AUC by which the retrained challenger must beat the champion.
        prediction_log_uri: Folder or s3:// prefix of the prediction log (empty: CHURN_PERFORMANCE__PREDICTION_LOG_URI
            or data/predictions).
        labels_uri: Folder or s3:// prefix of the labels_YYYYMMDD.csv files (empty: CHURN_PERFORMANCE__LABELS_URI
            or data/labels).
        as_of: The day performance is judged on, YYYY-MM-DD (empty: today): labels dated later have not arrived;
            the retraining cooldown counts in these days.
        engine: "pandas" or "dask": a folder increment (customers_YYYYMMDD/part-*.parquet) is always checked on
            Dask, and with "dask" a parquet file too; the retraining run uses this engine.
        shadow_active: A shadow answers beside the champion: compare their logged answers (churn rollout compare).
        shadow_window_days: Days of the prediction log (ending as_of) that comparison covers.
        s3_secret: In a cluster, the Secret with the S3 credentials (the chart's ``<release>-s3``).
        cluster_env: In a cluster, the chart's ``<release>-pipeline-env`` ConfigMap (endpoints, deploy target).
        mlflow_secret: In a cluster, the MLflow user monitoring reads the champion as (``<release>-mlflow-reader``).
        pushgateway_secret: In a cluster, the Pushgateway user results are pushed as (``<release>-pushgateway``).

    Returns:
        The verdict: "ok", "warn" or "alert" (the report lists the flagged features).

    """
    current = (
        load_current(source_uri=current_uri, engine=engine)
        .set_display_name("load increment")
        .set_caching_options(False)
    )
    checked = validate_current(
        current=current.outputs["current"], min_rows=min_rows, pushgateway_url=pushgateway_url
    ).set_display_name("validate")
    drift = check_drift(
        current=current.outputs["current"],
        tracking_uri=mlflow_tracking_uri,
        model_name=model_name,
        pushgateway_url=pushgateway_url,
    )
    drift.after(checked).set_display_name("drift checks vs @champion").set_caching_options(False)
    performance = check_performance(
        tracking_uri=mlflow_tracking_uri,
        model_name=model_name,
        prediction_log_uri=prediction_log_uri,
        labels_uri=labels_uri,
        as_of=as_of,
        pushgateway_url=pushgateway_url,
    )
    performance.after(checked).set_display_name("performance per cohort (logged predictions + labels)")
    performance.set_caching_options(False)
    # Retraining decides itself whether an alert calls for it (a drift alert or a realized-performance
    # alert, churn.stages.monitoring.retraining_reason): a KFP condition compares one output with a constant.
    with dsl.If(retrain_on_alert == True, name="retrain-on-alert"):  # noqa: E712 (a KFP condition, not Python)
        retrain = trigger_retraining(
            verdict=drift.outputs["Output"],
            performance=performance.outputs["report"],
            mode=retrain_mode,
            kfp_host=kfp_host,
            rows=retrain_rows,
            date=date,
            as_of=as_of,
            seed=seed,
            source_uri=retrain_source_uri,
            n_jobs=n_jobs,
            mlflow_tracking_uri=mlflow_tracking_uri,
            mlflow_experiment=mlflow_experiment,
            model_name=model_name,
            gate_margin=gate_margin,
            engine=engine,
            s3_secret=s3_secret,
            cluster_env=cluster_env,
        )
        retrain.set_display_name("retrain (gate decides)").set_caching_options(False)
    with dsl.If(shadow_active == True, name="shadow-active"):  # noqa: E712 (a KFP condition, not Python)
        shadow = compare_shadow(
            prediction_log_uri=prediction_log_uri,
            labels_uri=labels_uri,
            as_of=as_of,
            window_days=shadow_window_days,
            pushgateway_url=pushgateway_url,
        )
        shadow.after(checked).set_display_name("shadow vs champion (logged answers)").set_caching_options(False)
    use_cluster_env(s3_secret, cluster_env, mlflow_secret)
    # After the cluster env: every task's S3 Secret comes first, then its extra identities.
    for task in (checked, drift, performance, shadow):
        use_secret_env(task, pushgateway_secret, PUSHGATEWAY_KEYS)
    return drift.outputs["Output"]
