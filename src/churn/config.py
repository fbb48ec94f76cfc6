"""All settings, from defaults, ``CHURN_*`` environment variables or a ``.env`` file.

Defaults run everything on a laptop with no cluster and no cloud account. Nested
settings use ``__`` in variable names, e.g. ``CHURN_DATA__ROWS=5000`` or
``CHURN_VALIDATION__MIN_ROWS=10``. Nothing happens at import: settings are read when
:func:`get_settings` is called, and no folder is created until something is written.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn import __version__


class DataSettings(BaseModel):
    """Synthetic data generation."""

    rows: int = Field(100_000, ge=1, description="Rows of the initial load.")
    daily_rows: int = Field(1_000, ge=1, description="Rows of a daily increment.")
    seed: int = Field(42, description="Random seed of the generator.")
    churn_rate: float = Field(0.25, ge=0.01, le=0.9, description="Churn rate of the undrifted population.")
    date: dt.date | None = Field(None, description="Snapshot date of the main job; today (UTC) when unset.")
    format: Literal["csv", "parquet"] = Field("csv", description="File format of raw exports.")


class ValidationSettings(BaseModel):
    """Raw-data validation."""

    min_rows: int = Field(100, ge=1, description="Fewest data rows a valid file may have.")
    max_examples: int = Field(5, ge=1, le=100, description="Example rows listed per violation.")


class FeatureSettings(BaseModel):
    """Feature engineering."""

    rfm_bins: int = Field(5, ge=2, le=10, description="Quantile bins of each RFM score (fitted on training data).")


def _params(**values: Any) -> Any:
    return Field(default_factory=lambda: dict(values))


class TrainingSettings(BaseModel):
    """Model training: split, threads, hyperparameters per family, promotion gate."""

    seed: int = Field(42, description="Seed of the split and of every estimator.")
    validation_size: float = Field(0.15, gt=0, lt=0.5)
    test_size: float = Field(0.15, gt=0, lt=0.5)
    n_jobs: int = Field(2, ge=1, description="Threads per estimator (the build machines have 2 cores).")
    gate_margin: float = Field(
        0.002, ge=0, description="Test ROC-AUC by which a challenger must beat the champion to replace it."
    )
    logistic_regression: dict[str, Any] = _params(C=1.0, max_iter=2000)
    random_forest: dict[str, Any] = _params(
        n_estimators=150, max_depth=12, min_samples_leaf=20, max_features=0.3, max_samples=0.3
    )
    xgboost: dict[str, Any] = _params(
        n_estimators=2000,
        learning_rate=0.05,
        max_depth=4,
        min_child_weight=5,
        subsample=0.8,
        colsample_bytree=0.8,
        early_stopping_rounds=50,
    )
    lightgbm: dict[str, Any] = _params(
        n_estimators=2000,
        learning_rate=0.03,
        num_leaves=15,
        min_child_samples=50,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        early_stopping_rounds=50,
    )

    def params(self, family: str) -> dict[str, Any]:
        """Hyperparameters of ``family`` (a copy)."""
        return dict(getattr(self, family))


class MlflowSettings(BaseModel):
    """Experiment tracking and model registry."""

    tracking_uri: str | None = Field(
        None, description="Tracking server or store; unset = sqlite file under data_dir/mlflow (no server)."
    )
    artifact_location: str | None = Field(
        None, description="Artifact root of a new experiment; unset = data_dir/mlflow/artifacts (or the server's)."
    )
    experiment: str = Field("churn", description="Experiment name.")
    model_name: str = Field("churn-model", description="Registered model name.")
    timeout_seconds: int = Field(10, ge=1, description="HTTP timeout per request to a tracking server.")
    max_retries: int = Field(2, ge=0, description="HTTP retries per request before failing.")
    gate_username: str | None = Field(
        None,
        description="MLflow user the promotion gate runs as (the only one with MANAGE on the model, which moving "
        "@champion takes); unset = the same identity as every other step (MLFLOW_TRACKING_USERNAME).",
    )
    gate_password: SecretStr | None = Field(None, description="Password of the gate's MLflow user; never printed.")

    @property
    def gate_identity(self) -> tuple[str | None, str | None]:
        """(user, password) the promotion gate talks to MLflow as; (None, None) = the process's own."""
        return self.gate_username, self.gate_password.get_secret_value() if self.gate_password else None


#: How the service runs: see :attr:`ServingSettings.mode`.
ServingMode = Literal["transformer", "single"]


class ServingSettings(BaseModel):
    """The KServe predictor and transformer, and ``churn serve`` on a laptop."""

    model_name: str = Field("churn-model", description="Name the servers answer to (the InferenceService name).")
    max_batch_size: int = Field(10_000, ge=1, description="Most records one request may carry.")
    host: str = Field("127.0.0.1", description="Address `churn serve` binds (in a cluster the pods bind 0.0.0.0).")
    predictor_http_port: int = Field(8085, ge=1, le=65535, description="REST port of the local predictor.")
    predictor_grpc_port: int = Field(8086, ge=1, le=65535, description="gRPC port of the local predictor.")
    transformer_http_port: int = Field(8080, ge=1, le=65535, description="REST port of the local transformer.")
    transformer_grpc_port: int = Field(8081, ge=1, le=65535, description="gRPC port of the local transformer.")
    mode: ServingMode = Field(
        "transformer",
        description="transformer: our transformer (contract, features, reasons) in front of the predictor (KServe's "
        "shape); single: one model server does it all in one pass (no hop; see docs/serving.md#modes).",
    )
    predictor_protocol: Literal["grpc-v2", "v2"] = Field(
        "grpc-v2", description="How the transformer calls the predictor: gRPC (default) or V2 REST."
    )
    batch_threads: int = Field(
        0,
        ge=0,
        description="Threads the model predicts a large batch on (0: the cores the server may use, from its CPU "
        "affinity and cgroup quota); smaller requests predict on one thread, concurrency comes from requests.",
    )
    batch_threads_min_rows: int = Field(
        256, ge=1, description="Records from which a request counts as a large batch for batch_threads."
    )
    start_timeout_seconds: float = Field(120, gt=0, description="How long `churn serve` waits for both servers.")
    body_read_timeout_seconds: float = Field(
        30, gt=0, description="Longest wait for the rest of a request body before the servers answer 408."
    )
    rest_fast_path: bool = Field(
        True,
        description="Answer V2 REST /infer requests through KServe's data plane directly, without FastAPI's "
        "routing and a second JSON pass (the same answers; false: KServe's route answers every request).",
    )
    prediction_log_uri: str | None = Field(
        None, description="Folder or s3:// prefix where the transformer records every answer; unset = no log."
    )
    prediction_log_flush_seconds: float = Field(
        1.0, gt=0, le=3600, description="Longest time an answer waits in memory before the log writes it."
    )
    prediction_log_max_queue: int = Field(
        100_000, ge=1, description="Most answers held in memory for the log; beyond it they are dropped and counted."
    )
    variant: Literal["champion", "canary"] = Field(
        "champion", description="What the transformer's answers are in the prediction log: champion, or canary."
    )
    shadow_predictor_host: str | None = Field(
        None,
        description="host:port of a shadow predictor the transformer also sends every request to, off the request "
        "path (same protocol as the predictor; its answers are logged as variant shadow); unset = no shadow.",
    )
    shadow_model_name: str | None = Field(
        None, description="Model name the shadow predictor answers to [default: the transformer's model name]."
    )
    shadow_timeout_seconds: float = Field(
        2.0, gt=0, le=60, description="Longest wait for a shadow answer; then the shadow call is cancelled."
    )
    shadow_max_in_flight: int = Field(
        64, ge=1, description="Most shadow calls waiting at once; beyond it requests are not shadowed (counted)."
    )


class DeploySettings(BaseModel):
    """Where the training pipeline's deploy step rolls a champion out (set in a cluster by the chart's ConfigMap)."""

    namespace: str = Field("churn-mlops", description="Namespace of the InferenceService (the chart's namespace).")
    release: str = Field("churn", description="Helm release: names the ServingRuntime and the models' ServiceAccount.")
    serving_image: str = Field(
        f"ghcr.io/churn-mlops/churn-serving:{__version__}", description="Image of the transformer container."
    )
    deployment_mode: str = Field("RawDeployment", description="KServe deployment mode of the InferenceService.")
    service_account: str = Field(
        "", description="Service account of training runs a monitoring run submits (the chart's deployer)."
    )
    s3_secret: str = Field(
        "churn-s3",
        description="Secret with the S3 credentials the transformer writes its prediction log with "
        "(in a cluster the chart's ConfigMap names its write-only <release>-s3-predlog).",
    )


class RolloutSettings(BaseModel):
    """How the deploy step rolls a new champion out: steps, analysis and the thresholds that roll it back.

    At each step the canary takes ``steps[i]`` percent of the traffic; after
    ``analysis_interval_seconds`` the canary is compared with the stable version over that
    interval, from Prometheus. Every check passing moves to the next step (100 is full
    promotion); any failing rolls back at once. Too little traffic or no Prometheus holds the
    step, and past ``deadline_seconds`` rolls back: a rollout never promotes blind.
    """

    progressive: bool = Field(
        True, description="Roll out in steps with analysis (true) or switch all traffic at once once Ready (false)."
    )
    steps: list[int] = Field(
        [10, 50, 100], min_length=1, description="Canary traffic percent at each step; the last must be 100."
    )
    analysis_interval_seconds: float = Field(
        300, gt=0, description="How long each step runs before the canary is compared with the stable version."
    )
    deadline_seconds: float = Field(
        3600,
        gt=0,
        description="Longest a rollout waits for a verdict (no Prometheus, too little traffic) before it rolls back.",
    )
    prometheus_url: str = Field(
        "",
        description="Prometheus the analysis queries (in a cluster: the chart's value); empty = no analysis "
        "possible, so a progressive rollout holds, then rolls back.",
    )
    min_requests: int = Field(
        50, ge=1, description="Fewest requests each version must have answered in an interval for a verdict."
    )
    max_error_rate_increase: float = Field(
        0.01, ge=0, le=1, description="Most the canary's server-error share of requests may exceed the stable's."
    )
    max_latency_ratio: float = Field(
        1.5, gt=1, description="Most the canary's p95 latency may be, as a multiple of the stable's."
    )
    max_validation_failure_increase: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Most the canary's share of requests refused for their input may exceed the stable's.",
    )
    max_probability_psi: float = Field(
        0.2, gt=0, description="Largest PSI between the two versions' predicted-probability histograms."
    )
    max_churn_share_change: float = Field(
        0.1, ge=0, le=1, description="Largest absolute change in the share of customers predicted to churn."
    )

    @field_validator("steps")
    @classmethod
    def _steps_climb_to_100(cls, steps: list[int]) -> list[int]:
        if any(not 0 < step <= 100 for step in steps) or steps != sorted(set(steps)) or steps[-1] != 100:
            raise ValueError(f"steps must rise strictly within 1..100 and end at 100, not {steps}")
        return steps


class DaskSettings(BaseModel):
    """The Dask engine (``CHURN_ENGINE=dask``): where its cluster comes from and how large it is.

    In this order: an existing scheduler (``scheduler_address``); inside Kubernetes with
    ``kubernetes`` on, an ephemeral DaskCluster from the Dask operator; otherwise a
    ``distributed.LocalCluster`` sized to the machine.
    """

    scheduler_address: str | None = Field(
        None, description="Existing scheduler, e.g. tcp://dask-scheduler:8786; unset = start a cluster for the run."
    )
    connect_timeout_seconds: float = Field(30, gt=0, description="How long to wait for that scheduler.")
    n_workers: int | None = Field(
        None, ge=1, le=1024, description="Workers of a started cluster; unset = one per CPU core (local)."
    )
    threads_per_worker: int = Field(1, ge=1, le=64, description="Threads per worker process.")
    worker_start: Literal["forkserver", "spawn"] = Field(
        "forkserver",
        description="How a LocalCluster starts its worker processes: forkserver = forked from one process that has "
        "imported the engine's stack (each worker starts without its own imports); spawn = a new interpreter each "
        "(Dask's default).",
    )
    memory_limit: str = Field(
        "auto", min_length=1, description="Memory limit per worker, e.g. 4GiB; 'auto' = machine memory / workers."
    )
    kubernetes: bool = Field(
        False, description="Inside a cluster, create an ephemeral DaskCluster through the Dask operator."
    )
    namespace: str = Field("churn-mlops", min_length=1, description="Namespace of the operator's DaskCluster.")
    image: str = Field(
        f"ghcr.io/churn-mlops/churn:{__version__}",
        description="Image of the scheduler and workers (the pipeline image, so both run the same code).",
    )
    worker_cpu: str = Field("1", min_length=1, description="CPU request and limit of each Kubernetes worker.")
    worker_memory: str = Field("4Gi", min_length=1, description="Memory request and limit of each Kubernetes worker.")
    idle_timeout_seconds: int = Field(
        600, ge=0, description="The operator deletes an idle DaskCluster after this long (a safety net; 0 = never)."
    )
    dashboard_address: str | None = Field(
        None, description="Dashboard address of a LocalCluster, e.g. :8787; unset = no dashboard."
    )
    work_uri: str | None = Field(
        None,
        description="s3:// prefix where Dask-engine tasks keep the datasets they pass on, for workers that cannot "
        "see a task's files (a DaskCluster in Kubernetes, an existing scheduler); unset = the task's own folders.",
    )


class MonitoringSettings(BaseModel):
    """Drift and performance checks, and where their metrics go.

    Each check flags a change only when it is both large (the threshold) and
    statistically significant at ``alpha``, so a million rows of an unchanged
    population stay "ok" and a few dozen rows cannot raise an alert by chance.
    """

    psi_bins: int = Field(10, ge=2, le=50, description="Reference-quantile bins per numeric feature (ties merge bins).")
    psi_epsilon: float = Field(
        1e-4, gt=0, lt=0.01, description="Floor on bin proportions, so an empty bin gives a finite PSI."
    )
    psi_warn: float = Field(0.1, gt=0, description="PSI from which a numeric feature or the score is 'warn'.")
    psi_alert: float = Field(0.2, gt=0, description="PSI from which a numeric feature or the score is 'alert'.")
    wasserstein_warn: float = Field(
        0.1,
        gt=0,
        description="Wasserstein distance, in reference standard deviations, from which a numeric feature is 'warn' "
        "(Evidently's drift threshold).",
    )
    wasserstein_alert: float = Field(
        0.4,
        gt=0,
        description="Wasserstein distance, in reference standard deviations, that is 'alert' (a normal column "
        "shifted by 0.4 std; PSI reaches its 0.2 alert at about 0.45).",
    )
    wasserstein_alpha: float = Field(
        0.001,
        gt=0,
        lt=0.5,
        description="Significance level of the Wasserstein rule, shared among the numeric features (alpha / their "
        "number each): stricter than alpha, since at a daily 1,000 rows its 0.1-std threshold is within noise.",
    )
    alpha: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="Significance level of the PSI, chi-square, churn-rate and ROC-AUC tests.",
    )
    cramers_v_warn: float = Field(0.1, gt=0, le=1, description="Cramér's V from which a category is 'warn'.")
    cramers_v_alert: float = Field(0.2, gt=0, le=1, description="Cramér's V from which a category is 'alert'.")
    churn_rate_warn: float = Field(0.03, gt=0, lt=1, description="Absolute churn-rate change that is 'warn'.")
    churn_rate_alert: float = Field(0.05, gt=0, lt=1, description="Absolute churn-rate change that is 'alert'.")
    auc_drop_warn: float = Field(0.02, gt=0, lt=1, description="ROC-AUC drop below the champion's test score, 'warn'.")
    auc_drop_alert: float = Field(
        0.05, gt=0, lt=1, description="ROC-AUC drop below the champion's test score, 'alert'."
    )
    min_labelled_rows: int = Field(
        200, ge=2, description="Fewest labelled recent rows (both classes present) to score ROC-AUC at all."
    )
    chunk_rows: int = Field(262_144, ge=1_000, description="Rows binned at a time (bounds memory on large frames).")
    pushgateway_url: str | None = Field(
        None, description="Prometheus Pushgateway for the run's metrics, e.g. http://pushgateway:9091; unset = no push."
    )
    pushgateway_username: str | None = Field(
        None, description="User the monitoring publisher pushes as (the Pushgateway's --web.config.file basic auth)."
    )
    pushgateway_password: SecretStr | None = Field(
        None, description="Password of that user (from a Secret in a cluster); never printed."
    )
    push_job: str = Field("churn-monitoring", description="Pushgateway job name (grouping key) of monitoring runs.")
    push_timeout_seconds: float = Field(10.0, gt=0, description="HTTP timeout of a push.")
    retrain_cooldown_days: int = Field(
        7,
        ge=0,
        le=365,
        description="Days after a retraining started (counted in monitoring days, as_of) in which an alert does not "
        "start another; 0 = off. A retraining still running (or rolling out) blocks the next one either way.",
    )
    retraining_record_uri: str | None = Field(
        None,
        description="Folder or s3:// prefix where monitoring records the retraining it started (retraining.json); "
        "unset = data_dir/monitoring.",
    )

    @model_validator(mode="after")
    def _warn_below_alert(self) -> MonitoringSettings:
        for name in ("psi", "wasserstein", "cramers_v", "churn_rate", "auc_drop"):
            warn, alert = getattr(self, f"{name}_warn"), getattr(self, f"{name}_alert")
            if warn > alert:
                raise ValueError(f"{name}_warn ({warn}) must not exceed {name}_alert ({alert})")
        return self


class PerformanceSettings(BaseModel):
    """Performance monitoring: the prediction log joined with the churn labels that have arrived."""

    prediction_log_uri: str | None = Field(
        None, description="Folder or s3:// prefix of the prediction log; unset = data_dir/predictions."
    )
    labels_uri: str | None = Field(
        None, description="Folder or s3:// prefix of the labels_YYYYMMDD.csv files; unset = data_dir/labels."
    )
    label_delay_days: int = Field(
        30,
        ge=0,
        le=365,
        description="Days after scoring when a customer's churn label arrives (and the generator emits it).",
    )
    label_grace_days: int = Field(3, ge=0, le=365, description="Days labels may be late before 'labels overdue'.")
    window_days: int = Field(90, ge=1, le=3650, description="Cohorts (days) a performance run looks back over.")
    reference_cohorts: int = Field(
        7, ge=1, description="Oldest labelled cohorts the CBPE calibrator is fitted on (the reference period)."
    )
    push_job: str = Field("churn-performance", description="Pushgateway job name (grouping key) of performance runs.")


class ScoringSettings(BaseModel):
    """Batch scoring of the customer base (the scoring pipeline and ``churn score``)."""

    output_uri: str = Field("", description="Scored table: a folder or s3://bucket/prefix (empty: data_dir/scored).")
    reasons: bool = Field(True, description="Add each customer's top reasons (exact contributions) to the table.")
    reasons_method: str = Field(
        "shap",
        pattern="^(shap|path)$",
        description="Boosters' reasons, batch and online: shap (TreeSHAP, exact Shapley) or path (path attribution, "
        "about 20x faster, names TreeSHAP's top reason for 70-77% of customers).",
    )
    part_rows: int = Field(250_000, ge=1, description="Largest part file of the scored table.")
    push_job: str = Field("churn-scoring", description="Pushgateway job name of the scoring metrics.")


class Settings(BaseSettings):
    """Top-level settings of churn-mlops."""

    model_config = SettingsConfigDict(env_prefix="CHURN_", env_nested_delimiter="__", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Root of raw data, reports and feature tables.")
    engine: Literal["pandas", "dask"] = Field(
        "pandas", description="Engine of the data, validation, feature and monitoring stages: one process or Dask."
    )
    dask: DaskSettings = DaskSettings()
    data: DataSettings = DataSettings()
    validation: ValidationSettings = ValidationSettings()
    features: FeatureSettings = FeatureSettings()
    training: TrainingSettings = TrainingSettings()
    mlflow: MlflowSettings = MlflowSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    performance: PerformanceSettings = PerformanceSettings()
    serving: ServingSettings = ServingSettings()
    deploy: DeploySettings = DeploySettings()
    rollout: RolloutSettings = RolloutSettings()
    scoring: ScoringSettings = ScoringSettings()

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def truth_dir(self) -> Path:
        """True churn probabilities of generated files (never used as features)."""
        return self.data_dir / "truth"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def prediction_log_uri(self) -> str:
        """Where predictions are logged and performance runs read them."""
        return self.performance.prediction_log_uri or str(self.data_dir / "predictions")

    @property
    def labels_uri(self) -> str:
        """Where the delayed churn labels arrive."""
        return self.performance.labels_uri or str(self.data_dir / "labels")

    @property
    def retraining_record_uri(self) -> str:
        """Where monitoring records the retraining it started (the cooldown's and the running rule's fact)."""
        return self.monitoring.retraining_record_uri or str(self.data_dir / "monitoring")

    @property
    def features_dir(self) -> Path:
        return self.data_dir / "features"

    @property
    def scored_uri(self) -> str:
        """Where batch scoring commits its table: ``scoring.output_uri``, else ``data_dir/scored``."""
        return self.scoring.output_uri or str((self.data_dir / "scored").resolve())

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI; the embedded default is a sqlite file under ``data_dir``."""
        return self.mlflow.tracking_uri or f"sqlite:///{(self.data_dir / 'mlflow' / 'mlflow.db').resolve()}"

    def artifact_location_for(self, tracking_uri: str) -> str | None:
        """Artifact root for a new experiment on ``tracking_uri``.

        An explicit ``CHURN_MLFLOW__ARTIFACT_LOCATION`` wins; a local store (sqlite or a
        folder) keeps artifacts under ``data_dir/mlflow/artifacts``; a tracking server
        decides for itself (None), so pods never write to a path only they can see.
        """
        if self.mlflow.artifact_location:
            return self.mlflow.artifact_location
        if tracking_uri.startswith(("http://", "https://", "databricks")):
            return None
        return (self.data_dir / "mlflow" / "artifacts").resolve().as_uri()


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore them.

    Child processes started inside the block (a local pipeline's tasks) inherit the
    values, so this is how a caller hands a ``CHURN_*`` setting to them.
    """
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def get_settings() -> Settings:
    """Read the settings now (environment and ``.env`` included)."""
    return Settings()


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it (``scheme://user:password@host``) replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def redacted(value: Any) -> Any:
    """A settings dump (``model_dump()``) with every URL's password replaced, for printing."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value
