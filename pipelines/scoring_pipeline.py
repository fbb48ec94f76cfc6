"""The daily scoring pipeline: customer base -> validation -> scores and reasons with @champion -> scored table."""

from components.scoring import load_base, publish_scored, score_base, validate_base
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
    name="churn-scoring",
    description="Score the day's customer base with the @champion (its own feature pipeline, threshold and risk "
    "deciles), with each customer's top reasons, and commit the scored parquet table atomically.",
)
def scoring_pipeline(
    source_uri: str = "",
    latest_only: bool = False,
    destination: str = "",
    min_rows: int = 1,
    mlflow_tracking_uri: str = "",
    model_name: str = "churn-model",
    reasons: bool = True,
    log_predictions: bool = True,
    pushgateway_url: str = "",
    engine: str = "",
    s3_secret: str = S3_SECRET,
    cluster_env: str = CLUSTER_ENV,
    mlflow_secret: str = MLFLOW_READER_SECRET,
    pushgateway_secret: str = PUSHGATEWAY_SECRET,
) -> str:
    """Score one customer base.

    Args:
        source_uri: The base: a .csv/.parquet file, a folder of parts or an s3:// object or prefix
            (empty: the newest customers_YYYYMMDD file of the raw-data folder).
        latest_only: For a folder or prefix, score only its newest customers_YYYYMMDD file.
        destination: Where the scored table is committed: a folder or s3://bucket/prefix (empty: data/scored).
        min_rows: Fewest rows a valid base may have.
        mlflow_tracking_uri: MLflow tracking URI (empty: CHURN_MLFLOW__TRACKING_URI or the local default).
        model_name: Registered model whose @champion scores.
        reasons: Add each customer's top 3 reasons.
        log_predictions: Record every score in the prediction log (CHURN_PERFORMANCE__PREDICTION_LOG_URI), which
            performance monitoring joins with the labels that arrive later.
        pushgateway_url: Prometheus Pushgateway (empty: CHURN_MONITORING__PUSHGATEWAY_URL; unset: no push).
        engine: pandas (one process) or dask (a parquet base scored partition by partition on a Dask cluster,
            the same table; an s3:// source is read by the workers) (empty: CHURN_ENGINE).
        s3_secret: In a cluster, the Secret with the S3 credentials (the chart's ``<release>-s3``).
        cluster_env: In a cluster, the chart's ``<release>-pipeline-env`` ConfigMap (endpoints).
        mlflow_secret: In a cluster, the MLflow user the champion is read as (``<release>-mlflow-reader``).
        pushgateway_secret: In a cluster, the Pushgateway user metrics are pushed as (``<release>-pushgateway``).

    Returns:
        Where the scored table was committed.

    """
    base = load_base(source_uri=source_uri, latest_only=latest_only).set_display_name("load base")
    base.set_caching_options(False)
    checked = validate_base(base=base.outputs["base"], min_rows=min_rows, pushgateway_url=pushgateway_url)
    checked.set_display_name("validate")
    scored = score_base(
        base=base.outputs["base"],
        tracking_uri=mlflow_tracking_uri,
        model_name=model_name,
        reasons=reasons,
        pushgateway_url=pushgateway_url,
        engine=engine,
        source_uri=base.outputs["Output"],
    )
    scored.after(checked).set_display_name("score with @champion").set_caching_options(False)
    published = publish_scored(
        scored=scored.outputs["scored"],
        destination=destination,
        pushgateway_url=pushgateway_url,
        log_predictions=log_predictions,
    )
    published.set_display_name("write scored table").set_caching_options(False)
    use_cluster_env(s3_secret, cluster_env, mlflow_secret)
    for task in (checked, scored, published):
        use_secret_env(task, pushgateway_secret, PUSHGATEWAY_KEYS)
    return published.output
