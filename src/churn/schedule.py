"""Recurring runs on a KFP backend: upload the compiled pipelines, (re)create the three schedules.

Data daily at 02:00, training weekly on Sunday at 03:00, monitoring daily at 06:00, in
KFP's six-field cron (seconds first), one run at a time and no catch-up after downtime.
Idempotent: each pipeline is uploaded once and gets a new version only when its compiled
YAML changed; a schedule of the same name is deleted before it is created again, so
re-running replaces and never duplicates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churn.errors import ChurnError


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
    """Create (or replace) the three recurring runs; return what was scheduled.

    Args:
        client: A ``kfp.Client`` connected to the KFP API.
        compiled_dir: Folder holding ``<pipeline>_pipeline.yaml`` (``churn pipeline compile``).
        experiment: KFP experiment the recurring runs belong to (created when missing).
        params: Pipeline parameters per pipeline name ("data", "training", "monitoring").
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
