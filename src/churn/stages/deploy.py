"""The deploy stage (``components/deploy.py``): roll the new champion out to KServe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn.errors import ChurnError
from churn.stages.markdown import write_text

if TYPE_CHECKING:
    from churn.config import Settings
    from churn.deploy import CustomObjects, ServingTarget
    from churn.rollout.cluster import RolloutModels
    from churn.rollout.decisions import RolloutRecorder

# Each task is a fresh interpreter that runs one step: heavy libraries (scikit-learn,
# pandera, MLflow) are imported by the functions that use them, not by every task.


def deploy(
    version: str,
    manifest_path: str | Path,
    *,
    tracking_uri: str,
    model_name: str,
    mode: str,
    namespace: str,
    canary_percent: int | None,
    timeout: float,
    report_path: str | Path | None = None,
    identity: tuple[str | None, str | None] = (None, None),
) -> dict[str, Any]:
    """Roll ``version`` out to KServe (mode ``cluster``) or write the manifest it would apply (``local``).

    With ``settings.rollout.progressive`` (and no fixed ``canary_percent``) and a stable
    version to compare with, the rollout is progressive: the canary at the first step, then
    :func:`churn.rollout.cluster.roll_out` steps it up, judged from Prometheus, and promotes
    or rolls back (``@champion`` back as the gate's user ``identity``); the per-step table goes
    to ``report_path``. Otherwise the whole InferenceService switches once Ready, as before.

    The manifest is written in both modes, so the KFP UI shows what was (or would be) applied:
    in a progressive rollout, the canary at its first step. An empty ``namespace`` is the
    settings' (``CHURN_DEPLOY__NAMESPACE``, the chart's namespace).
    """
    from mlflow import MlflowClient

    from churn.config import get_settings
    from churn.deploy import ServingTarget, apply, inference_service, write_manifest
    from churn.registry.mlflow_registry import connect_registry
    from churn.rollout.kserve import cluster_api

    if mode not in ("local", "cluster"):
        raise ChurnError(f"deploy mode must be local or cluster, not {mode!r}")
    connect_registry(tracking_uri)
    settings = get_settings()
    storage = _storage(MlflowClient(), model_name, version, local=mode == "local")
    target = ServingTarget.from_settings(settings, name=model_name, namespace=namespace)
    api = cluster_api() if mode == "cluster" else None
    models = None
    if settings.rollout.progressive and canary_percent is None:
        models = _rollout_models(api, target, model_name, version, storage, local=mode == "local")
    if models is None:
        manifest = inference_service(target, storage, model_version=version, canary_percent=canary_percent)
        rollout = write_manifest(manifest, Path(manifest_path))
        if api is not None:
            rollout = apply(manifest, api, timeout=timeout)
        _write_report(report_path, f"# Deploy of {model_name} v{version}\n\n{rollout.message}\n")
        return {"applied": rollout.applied, "ready": rollout.ready, "message": rollout.message, "storage_uri": storage}
    return _progressive(api, target, models, settings, Path(manifest_path), report_path, identity, timeout)


def _progressive(
    api: CustomObjects | None,
    target: ServingTarget,
    models: RolloutModels,
    settings: Settings,
    manifest_path: Path,
    report_path: str | Path | None,
    identity: tuple[str | None, str | None],
    timeout: float,
) -> dict[str, Any]:
    from churn.deploy import write_manifest
    from churn.rollout.cluster import canary_manifest, prometheus_analysis, roll_out
    from churn.rollout.operator import overrule_hook
    from churn.rollout.record import (
        OVERRIDE_TAG,
        REASON_TAG,
        STATUS_TAG,
        STEP_TAG,
        MarkdownTable,
        MlflowTags,
        PushgatewayMetrics,
        Recorders,
        tag_version,
    )

    rollout = settings.rollout
    written = write_manifest(canary_manifest(target, models, rollout), manifest_path)
    name, version = models.model_name, models.version
    steps = ", ".join(f"{p}%" for p in rollout.steps)
    if api is None:
        message = f"{written.message}: the canary at its first step; a cluster would roll it out in steps {steps}"
        _write_report(report_path, f"# Rollout of {name} v{version}\n\n{message}\n")
        return {"applied": False, "ready": False, "message": message, "storage_uri": models.storage}
    recorders: list[RolloutRecorder] = [MlflowTags(name, version)]
    if report_path is not None:
        recorders.append(MarkdownTable(report_path))
    if settings.monitoring.pushgateway_url:
        recorders.append(PushgatewayMetrics(settings.monitoring.pushgateway_url, name))
    start = {STATUS_TAG: "progressing", STEP_TAG: f"1 ({rollout.steps[0]}%)", REASON_TAG: "canary applied"}
    tag_version(name, version, {**start, OVERRIDE_TAG: ""})  # a word left from before is no word on this rollout
    result = roll_out(
        api, target, models, rollout, analyse=prometheus_analysis(rollout), recorder=Recorders(*recorders),
        overrule=overrule_hook(name, version), identity=identity, ready_timeout=timeout,
    )  # fmt: skip
    message = f"{name} v{version}: {result.status.replace('_', ' ')}: {result.reason}"
    return {
        "applied": True,
        "ready": result.status == "promoted",
        "message": message,
        "storage_uri": models.storage,
        "status": result.status,
    }


def _storage(client: Any, model_name: str, version: str, *, local: bool) -> str:
    """Where KServe fetches a version from (a local run may keep a local store)."""
    from churn.deploy import storage_uri

    download_uri = str(client.get_model_version_download_uri(model_name, version))
    return download_uri if local and not download_uri.startswith("s3://") else storage_uri(download_uri)


def _rollout_models(
    api: CustomObjects | None, target: ServingTarget, model_name: str, version: str, storage: str, *, local: bool
) -> RolloutModels | None:
    """The rollout's two models; None when there is no stable one to compare with (a first deploy)."""
    from mlflow import MlflowClient

    from churn.deploy import read_inference_service
    from churn.rollout.cluster import RolloutModels
    from churn.rollout.kserve import traffic_state
    from churn.rollout.record import previous_champion

    if api is None:
        stable: str | None = previous_champion(model_name, version)
    else:
        current = read_inference_service(api, target.namespace, target.name)
        stable = traffic_state(current).stable_version if current else None
    if not stable or stable == version:
        return None
    stable_storage = _storage(MlflowClient(), model_name, stable, local=local)
    return RolloutModels(model_name, version, storage, stable, stable_storage)


def _write_report(path: str | Path | None, text: str) -> None:
    if path is not None:
        write_text(path, text)
