"""The daily data pipeline: generate or ingest the day's increment, validate it, publish it for monitoring."""

from components.data import load_data, validate_data
from components.monitoring import publish_increment
from kfp import dsl

from pipelines._cluster import CLUSTER_ENV, S3_SECRET, use_cluster_env


@dsl.pipeline(
    name="churn-daily-data",
    description="Generate (or ingest) the day's increment of customers, validate it and publish it as "
    "customers_YYYYMMDD.csv (or a customers_YYYYMMDD/ folder of parts) where the monitoring pipeline reads it.",
)
def data_pipeline(
    source_uri: str = "",
    rows: int = 1_000,
    date: str = "",
    seed: int = 42,
    scenario: str = "none",
    min_rows: int = 100,
    destination: str = "",
    engine: str = "pandas",
    s3_secret: str = S3_SECRET,
    cluster_env: str = CLUSTER_ENV,
) -> str:
    """Produce one daily increment.

    Args:
        source_uri: Export to ingest (path or s3://); empty generates ``rows`` customers.
        rows: Rows of a generated increment.
        date: Snapshot date YYYY-MM-DD (empty: today).
        seed: Seed of the generator.
        scenario: Drift scenario of generated data (none, price_shock, channel_shift, ...).
        min_rows: Fewest rows a valid increment may have.
        destination: Folder or s3://bucket/prefix to publish to (empty: the raw-data folder).
        engine: "pandas" (customers_YYYYMMDD.csv) or "dask" (a customers_YYYYMMDD/ folder of parquet parts,
            generated in bounded memory and validated on a Dask cluster).
        s3_secret: In a cluster, the Secret with the S3 credentials (the chart's ``<release>-s3``).
        cluster_env: In a cluster, the chart's ``<release>-pipeline-env`` ConfigMap (endpoints, deploy target).

    Returns:
        Where the increment was published.

    """
    data = load_data(source_uri=source_uri, rows=rows, date=date, seed=seed, scenario=scenario, engine=engine)
    data.set_display_name("load increment").set_caching_options(False)
    checked = validate_data(raw=data.outputs["raw"], min_rows=min_rows).set_display_name("validate")
    published = publish_increment(raw=data.outputs["raw"], date=date, destination=destination)
    published.after(checked).set_display_name("publish").set_caching_options(False)
    use_cluster_env(s3_secret, cluster_env)
    return published.output
