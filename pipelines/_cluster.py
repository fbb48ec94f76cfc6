"""What every task reads in a cluster: the chart's S3 Secret and its pipeline-env ConfigMap.

The Helm chart (helm/churn-mlops) renders ``<release>-s3`` (or ``s3.existingSecret``) and
``<release>-pipeline-env``; each pipeline takes their names as parameters, so a release
of any name works. kfp-kubernetes settings are ignored by local runs.
"""

from kfp import dsl, kubernetes

from churn.kfp.schedule import Release

#: Keys of the S3 Secret, passed as the environment variables boto3 and MLflow read.
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
#: Keys of the pipeline-env ConfigMap (helm/churn-mlops/templates/pipeline-env.yaml renders every one).
CLUSTER_ENV_KEYS = (
    "CHURN_MLFLOW__TRACKING_URI",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "CHURN_MONITORING__PUSHGATEWAY_URL",
    "CHURN_SERVING__MODE",
    "CHURN_SERVING__PREDICTOR_PROTOCOL",
    "CHURN_SERVING__MAX_BATCH_SIZE",
    "CHURN_SERVING__SHADOW_PREDICTOR_HOST",
    "CHURN_SERVING__SHADOW_MODEL_NAME",
    "CHURN_SERVING__PREDICTION_LOG_URI",
    "CHURN_DEPLOY__S3_SECRET",
    "CHURN_PERFORMANCE__PREDICTION_LOG_URI",
    "CHURN_PERFORMANCE__LABELS_URI",
    "CHURN_PERFORMANCE__LABEL_DELAY_DAYS",
    "CHURN_MONITORING__RETRAIN_COOLDOWN_DAYS",
    "CHURN_MONITORING__RETRAINING_RECORD_URI",
    "CHURN_DEPLOY__NAMESPACE",
    "CHURN_DEPLOY__RELEASE",
    "CHURN_DEPLOY__SERVING_IMAGE",
    "CHURN_DEPLOY__DEPLOYMENT_MODE",
    "CHURN_DEPLOY__SERVICE_ACCOUNT",
    "CHURN_IMAGE_REGISTRY",
    "CHURN_ROLLOUT__PROGRESSIVE",
    "CHURN_ROLLOUT__STEPS",
    "CHURN_ROLLOUT__ANALYSIS_INTERVAL_SECONDS",
    "CHURN_ROLLOUT__DEADLINE_SECONDS",
    "CHURN_ROLLOUT__PROMETHEUS_URL",
    "CHURN_ROLLOUT__MIN_REQUESTS",
    "CHURN_ROLLOUT__MAX_ERROR_RATE_INCREASE",
    "CHURN_ROLLOUT__MAX_LATENCY_RATIO",
    "CHURN_ROLLOUT__MAX_VALIDATION_FAILURE_INCREASE",
    "CHURN_ROLLOUT__MAX_PROBABILITY_PSI",
    "CHURN_ROLLOUT__MAX_CHURN_SHARE_CHANGE",
    "CHURN_DASK__KUBERNETES",
    "CHURN_DASK__NAMESPACE",
    "CHURN_DASK__IMAGE",
    "CHURN_DASK__WORK_URI",
    "MLFLOW_DISABLE_TELEMETRY",
    "DO_NOT_TRACK",
)
#: Keys of the chart's MLflow user Secrets (``<release>-mlflow-<role>``), read by MLflow's client as they are.
MLFLOW_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
#: The gate's user, under the names the promotion gate reads (churn.config.MlflowSettings.gate_username/_password).
GATE_KEYS = {
    "MLFLOW_TRACKING_USERNAME": "CHURN_MLFLOW__GATE_USERNAME",
    "MLFLOW_TRACKING_PASSWORD": "CHURN_MLFLOW__GATE_PASSWORD",
}
#: The Pushgateway user Secret's keys, as the monitoring publisher reads them.
PUSHGATEWAY_KEYS = {
    "username": "CHURN_MONITORING__PUSHGATEWAY_USERNAME",
    "password": "CHURN_MONITORING__PUSHGATEWAY_PASSWORD",
}
#: Defaults of the name parameters: the chart installed as release "churn".
S3_SECRET = Release().s3_secret
CLUSTER_ENV = Release().cluster_env
MLFLOW_PIPELINE_SECRET = Release().mlflow_secret("pipeline")
MLFLOW_GATE_SECRET = Release().mlflow_secret("gate")
MLFLOW_READER_SECRET = Release().mlflow_secret("reader")
PUSHGATEWAY_SECRET = Release().pushgateway_secret


def use_cluster_env(s3_secret: str, cluster_env: str, mlflow_secret: str | None = None) -> None:
    """Give every task of the pipeline being defined the S3 credentials, its MLflow user and the chart's endpoints.

    Call it last in the pipeline function, after every task exists. A pipeline that does not
    talk to MLflow passes no ``mlflow_secret``.
    """
    for task in dsl.pipeline_context.Pipeline.get_default_pipeline().tasks.values():
        kubernetes.use_secret_as_env(task, secret_name=s3_secret, secret_key_to_env={k: k for k in S3_KEYS})
        if mlflow_secret is not None:
            use_secret_env(task, mlflow_secret, {k: k for k in MLFLOW_KEYS})
        kubernetes.use_config_map_as_env(
            task, config_map_name=cluster_env, config_map_key_to_env={k: k for k in CLUSTER_ENV_KEYS}
        )


def use_secret_env(task: dsl.PipelineTask, secret: str, keys: dict[str, str]) -> None:
    """Give one task more credentials (the gate its MLflow user, the publisher its Pushgateway user), if they exist."""
    kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=keys, optional=True)
