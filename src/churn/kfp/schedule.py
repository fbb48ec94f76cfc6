"""Recurring runs on a KFP backend: upload the compiled pipelines, (re)create the four schedules.

Data daily at 02:00, training weekly on Sunday at 03:00, scoring daily at 04:00 (after the
day's data, and after Sunday's training has had an hour), monitoring daily at 06:00, in
KFP's six-field cron (seconds first), one run at a time and no catch-up after downtime.
Idempotent: each pipeline is uploaded once and gets a new version only when its compiled
YAML changed; a schedule of the same name is deleted before it is created again, so
re-running replaces and never duplicates.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churn.errors import ChurnError
from churn.storage import Location


@dataclass(frozen=True)
class Schedule:
    """One recurring run."""

    name: str
    pipeline: str
    cron: str
    description: str


SCHEDULES: tuple[Schedule, ...] = (
    Schedule("churn-data-daily", "data", "0 0 2 * * *", "The day's customer increment, daily at 02:00."),
    Schedule("churn-training-weekly", "training", "0 0 3 * * 0", "Train, gate and deploy, Sundays at 03:00."),
    Schedule(
        "churn-scoring-daily", "scoring", "0 0 4 * * *", "Score the day's customers with reasons, daily at 04:00."
    ),
    Schedule("churn-monitoring-daily", "monitoring", "0 0 6 * * *", "Drift checks of the latest day, daily at 06:00."),
)


def _version_id(client: Any, pipeline: str, package: Path) -> str:
    """Upload ``package`` as pipeline ``churn-<pipeline>`` (new version only when the YAML changed)."""
    name = f"churn-{pipeline}"
    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:12]
    version_name = f"{name}-{digest}"
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(str(package), pipeline_name=name).pipeline_id
    listed = client.list_pipeline_versions(pipeline_id, page_size=100, filter=None).pipeline_versions or []
    for version in listed:
        if version.display_name == version_name:
            return str(version.pipeline_version_id)
    created = client.upload_pipeline_version(str(package), version_name, pipeline_id=pipeline_id)
    return str(created.pipeline_version_id)


def schedule_all(
    client: Any,
    compiled_dir: Path,
    *,
    experiment: str = "churn",
    params: dict[str, dict[str, Any]] | None = None,
    service_account: str = "",
) -> list[dict[str, str]]:
    """Create (or replace) the recurring runs of :data:`SCHEDULES`; return what was scheduled.

    Args:
        client: A ``kfp.Client`` connected to the KFP API.
        compiled_dir: Folder holding ``<pipeline>_pipeline.yaml`` (``churn pipeline compile``).
        experiment: KFP experiment the recurring runs belong to (created when missing).
        params: Pipeline parameters per pipeline name ("data", "training", "scoring", "monitoring").
        service_account: Service account of the runs (the chart's ``<release>-deployer`` lets
            the training run's deploy step patch the InferenceService).

    """
    params = params or {}
    packages = {s.pipeline: compiled_dir / f"{s.pipeline}_pipeline.yaml" for s in SCHEDULES}
    missing = [str(p) for p in packages.values() if not p.is_file()]
    if missing:
        raise ChurnError(f"compiled pipelines missing: {', '.join(missing)} (run `churn pipeline compile`)")
    try:
        experiment_id = client.get_experiment(experiment_name=experiment).experiment_id
    except Exception:  # the client raises a ValueError-like error when the experiment does not exist
        experiment_id = client.create_experiment(experiment).experiment_id
    listed = client.list_recurring_runs(experiment_id=experiment_id, page_size=100).recurring_runs or []
    scheduled = []
    for schedule in SCHEDULES:
        version_id = _version_id(client, schedule.pipeline, packages[schedule.pipeline])
        for old in listed:
            if old.display_name == schedule.name:
                client.delete_recurring_run(old.recurring_run_id)
        client.create_recurring_run(
            experiment_id,
            schedule.name,
            description=schedule.description,
            cron_expression=schedule.cron,
            max_concurrency=1,
            no_catchup=True,
            params=params.get(schedule.pipeline, {}),
            pipeline_id=client.get_pipeline_id(f"churn-{schedule.pipeline}"),
            version_id=version_id,
            service_account=service_account or None,
        )
        scheduled.append({"name": schedule.name, "pipeline": schedule.pipeline, "cron": schedule.cron})
    return scheduled


@dataclass(frozen=True)
class Release:
    """What the Helm chart (helm/churn-mlops) installed as release ``name`` gives the pipelines, by name."""

    name: str = "churn"

    @property
    def s3_secret(self) -> str:
        return f"{self.name}-s3"

    @property
    def cluster_env(self) -> str:
        return f"{self.name}-pipeline-env"

    def mlflow_secret(self, role: str) -> str:
        """The Secret holding the MLflow user of ``role`` (pipeline, gate, reader), keys MLFLOW_TRACKING_*."""
        return f"{self.name}-mlflow-{role}"

    @property
    def pushgateway_secret(self) -> str:
        """The Secret with the Pushgateway user the monitoring publisher pushes as."""
        return f"{self.name}-pushgateway"

    @property
    def deployer(self) -> str:
        """The service account that may create and patch InferenceServices."""
        return f"{self.name}-deployer"


def cluster_parameters(
    *,
    release: str = "churn",
    s3_secret: str = "",
    increments_uri: str = "s3://mlflow/increments/",
    tracking_uri: str = "",
    retrain_on_alert: bool = False,
    scored_uri: str = "s3://mlflow/scored/",
) -> dict[str, dict[str, Any]]:
    """Parameters of each pipeline in a cluster where the chart is installed as ``release``.

    Every run reads the release's S3 Secret and pipeline-env ConfigMap; the data pipeline
    publishes each day under ``increments_uri`` and monitoring checks the newest file there
    (a task's own disk is gone when it ends); training deploys what its gate promotes; on an
    alert, monitoring can submit a training run to the in-cluster KFP API. Scoring scores the
    newest increment and commits its table under ``scored_uri``.

    Raises:
        ChurnError: ``increments_uri`` or ``scored_uri`` is not an ``s3://bucket/prefix``.

    """
    for what, uri in (("increments", increments_uri), ("scored table", scored_uri)):
        try:
            on_s3 = Location.parse(uri).is_s3
        except ChurnError:
            on_s3 = False
        if not on_s3:
            raise ChurnError(f"{what} URI must be s3://bucket/prefix/ (pods share no disk), not {uri!r}")
    increments = increments_uri.rstrip("/") + "/"
    names = Release(release)
    common: dict[str, Any] = {"s3_secret": s3_secret or names.s3_secret, "cluster_env": names.cluster_env}
    tracking = {"mlflow_tracking_uri": tracking_uri} if tracking_uri else {}
    retrain = {"retrain_on_alert": True, "retrain_mode": "kfp"} if retrain_on_alert else {}
    return {
        "data": {**common, "destination": increments},
        "training": {
            **common,
            **tracking,
            "deploy_mode": "cluster",
            "mlflow_secret": names.mlflow_secret("pipeline"),
            "gate_secret": names.mlflow_secret("gate"),
        },
        "monitoring": {
            **common,
            **tracking,
            "current_uri": increments,
            **retrain,
            "mlflow_secret": names.mlflow_secret("reader"),
            "pushgateway_secret": names.pushgateway_secret,
        },
        "scoring": {
            **common,
            **tracking,
            "source_uri": increments,
            "latest_only": True,
            "destination": scored_uri.rstrip("/") + "/",
            "mlflow_secret": names.mlflow_secret("reader"),
            "pushgateway_secret": names.pushgateway_secret,
        },
    }


_PARAMETER_TYPES: dict[str, Any] = {"NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "STRING": str}


def typed_arguments(package: Path, given: dict[str, str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as the pipeline's typed parameters (the KFP API refuses "5000" for an int).

    Raises:
        ChurnError: No such package, a parameter the pipeline does not take, or a value of the wrong type.

    """
    import yaml

    if not package.is_file():
        raise ChurnError(f"compiled pipeline missing: {package} (run `churn pipeline compile`)")
    spec = next(yaml.safe_load_all(package.read_text()))
    declared = spec["root"]["inputDefinitions"]["parameters"]
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ChurnError(f"{package.name} takes no parameter {', '.join(unknown)}; it takes {', '.join(declared)}")
    typed: dict[str, Any] = {}
    for name, value in given.items():
        kind = declared[name]["parameterType"]
        try:
            if kind == "BOOLEAN":
                if value.lower() not in ("true", "false"):
                    raise ValueError("not true or false")
                typed[name] = value.lower() == "true"
            else:
                typed[name] = _PARAMETER_TYPES[kind](value)
        except (KeyError, ValueError) as exc:
            raise ChurnError(f"parameter {name}={value!r}: expected {kind.lower()} ({exc})") from None
    return typed


def submit_run(
    client: Any,
    package: Path,
    arguments: dict[str, Any],
    *,
    experiment: str = "churn",
    service_account: str = "",
    wait_seconds: float = 0,
    run_name: str = "",
    host: str = "",
) -> dict[str, str]:
    """Start one run of a compiled pipeline; with ``wait_seconds``, wait for it and fail unless it succeeded.

    ``run_name`` defaults to ``churn-<pipeline> <time>``; ``host`` only names the API in errors.

    Raises:
        ChurnError: The package is missing, the API refuses the run, or the run did not succeed in time.

    """
    if not package.is_file():
        raise ChurnError(f"compiled pipeline missing: {package} (run `churn pipeline compile`)")
    name = package.name.removesuffix("_pipeline.yaml")
    try:
        run = client.create_run_from_pipeline_package(
            str(package),
            arguments=arguments,
            run_name=run_name or f"churn-{name} {time.strftime('%Y-%m-%d %H:%M:%S')}",
            experiment_name=experiment,
            service_account=service_account or None,
        )
    except Exception as exc:  # the KFP client raises many types (HTTP, auth, connection)
        raise ChurnError(f"could not submit the {name} pipeline to KFP at {host or 'in-cluster'}: {exc}") from exc
    if not wait_seconds:
        return {"run_id": str(run.run_id), "state": "SUBMITTED"}
    try:
        done = client.wait_for_run_completion(run.run_id, timeout=int(wait_seconds))
    except TimeoutError:
        raise ChurnError(f"{name} run {run.run_id} did not finish within {wait_seconds:.0f} s") from None
    except Exception as exc:
        raise ChurnError(f"lost track of {name} run {run.run_id}: {exc}") from exc
    state = str(done.state)
    if state != "SUCCEEDED":
        raise ChurnError(f"{name} run {run.run_id} ended {state}; see its logs in the KFP UI")
    return {"run_id": str(run.run_id), "state": state}
