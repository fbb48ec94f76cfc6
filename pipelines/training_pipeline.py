"""The weekly training pipeline: data -> validation -> split -> four models -> selection -> gate -> deploy."""

from components.data import load_data, split_data, validate_data
from components.deploy import deploy_model
from components.registry import promote_model, register_model
from components.training import select_model, train_model
from kfp import dsl

from churn.training.models import FAMILIES
from pipelines._cluster import (
    CLUSTER_ENV,
    GATE_KEYS,
    MLFLOW_GATE_SECRET,
    MLFLOW_PIPELINE_SECRET,
    PUSHGATEWAY_KEYS,
    PUSHGATEWAY_SECRET,
    S3_SECRET,
    use_cluster_env,
    use_secret_env,
)


@dsl.pipeline(
    name="churn-training",
    description="Generate or ingest customers, validate, split 70/15/15, train four model families, "
    "register the best as @challenger in MLflow, promote it to @champion if it beats the current one, "
    "and roll the new champion out to KServe.",
)
def training_pipeline(
    source_uri: str = "",
    rows: int = 100_000,
    date: str = "",
    seed: int = 42,
    scenario: str = "none",
    min_rows: int = 100,
    n_jobs: int = 2,
    engine: str = "pandas",
    mlflow_tracking_uri: str = "",
    mlflow_experiment: str = "churn",
    model_name: str = "churn-model",
    gate_margin: float = 0.002,
    deploy_mode: str = "local",
    namespace: str = "",
    canary_percent: int = -1,
    s3_secret: str = S3_SECRET,
    cluster_env: str = CLUSTER_ENV,
    mlflow_secret: str = MLFLOW_PIPELINE_SECRET,
    gate_secret: str = MLFLOW_GATE_SECRET,
    pushgateway_secret: str = PUSHGATEWAY_SECRET,
) -> str:
    """Train, register and (maybe) promote a churn model.

    Args:
        source_uri: Raw export to ingest (path or s3://); empty generates ``rows`` customers.
        rows: Rows to generate when no ``source_uri`` is given.
        date: Snapshot date YYYY-MM-DD of generated data (empty: today).
        seed: Seed of the generator, the split and the estimators.
        scenario: Drift scenario of generated data.
        min_rows: Fewest rows a valid export may have.
        n_jobs: Threads per estimator.
        engine: "pandas" (each task in one process) or "dask" (partitioned parquet; split, training,
            selection and the reference on a Dask cluster per task: boosters on every row).
        mlflow_tracking_uri: MLflow tracking URI (empty: CHURN_MLFLOW__TRACKING_URI or the local default).
        mlflow_experiment: MLflow experiment name.
        model_name: Registered model name.
        gate_margin: ROC-AUC by which the challenger must beat the champion.
        deploy_mode: "cluster" patches the InferenceService (run with the chart's deployer service
            account); "local" only writes the manifest it would apply.
        namespace: Namespace of the InferenceService (empty: CHURN_DEPLOY__NAMESPACE, the chart's namespace).
        canary_percent: Share of traffic for the new model (0-100); -1 rolls it out fully.
        s3_secret: In a cluster, the Secret with the S3 credentials (the chart's ``<release>-s3``).
        cluster_env: In a cluster, the chart's ``<release>-pipeline-env`` ConfigMap (endpoints, deploy target).
        mlflow_secret: In a cluster, the MLflow user every task runs as (the chart's ``<release>-mlflow-pipeline``:
            logs runs, registers versions, moves @challenger).
        gate_secret: In a cluster, the promotion gate's own MLflow user (``<release>-mlflow-gate``), the only one
            allowed to move @champion (the gate's, and the deploy step's after a rollback).
        pushgateway_secret: In a cluster, the Pushgateway user the deploy step pushes the rollout's metrics as.

    Returns:
        The gate decision: "promoted" or "rejected".

    """
    data = load_data(source_uri=source_uri, rows=rows, date=date, seed=seed, scenario=scenario, engine=engine)
    data.set_display_name("load data")
    checked = validate_data(raw=data.outputs["raw"], min_rows=min_rows).set_display_name("validate")
    parts = split_data(raw=data.outputs["raw"], seed=seed).after(checked).set_display_name("split 70/15/15")
    trained = {}
    for family in FAMILIES:
        task = train_model(
            family=family,
            train=parts.outputs["train"],
            validation=parts.outputs["validation"],
            n_jobs=n_jobs,
            seed=seed,
        )
        # Two threads per estimator by default (n_jobs): request the cores they use.
        task.set_display_name(f"train {family}").set_cpu_request("2").set_memory_request("2G")
        trained[family] = task.outputs["model"]
    chosen = select_model(**trained, test=parts.outputs["test"]).set_display_name("evaluate and select")
    registered = register_model(
        **trained,
        winner=chosen.outputs["winner"],
        train=parts.outputs["train"],
        test=parts.outputs["test"],
        fingerprint=data.outputs["Output"],
        kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        tracking_uri=mlflow_tracking_uri,
        experiment=mlflow_experiment,
        model_name=model_name,
    )
    registered.set_display_name("register @challenger").set_caching_options(False)
    gate = promote_model(
        version=registered.outputs["version"],
        parent_run_id=registered.outputs["parent_run_id"],
        test=parts.outputs["test"],
        tracking_uri=mlflow_tracking_uri,
        model_name=model_name,
        margin=gate_margin,
    )
    gate.set_display_name("promotion gate").set_caching_options(False)
    with dsl.If(gate.outputs["Output"] == "promoted", name="promoted"):
        deployed = deploy_model(
            version=registered.outputs["version"],
            tracking_uri=mlflow_tracking_uri,
            model_name=model_name,
            mode=deploy_mode,
            namespace=namespace,
            canary_percent=canary_percent,
        )
        deployed.set_display_name("deploy to KServe").set_caching_options(False)
    use_cluster_env(s3_secret, cluster_env, mlflow_secret)
    use_secret_env(gate, gate_secret, GATE_KEYS)
    # A rollout that rolls back moves @champion back as the gate's user; it pushes its state to the Pushgateway.
    use_secret_env(deployed, gate_secret, GATE_KEYS)
    use_secret_env(deployed, pushgateway_secret, PUSHGATEWAY_KEYS)
    return gate.outputs["Output"]
