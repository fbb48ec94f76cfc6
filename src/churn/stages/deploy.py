"""The deploy stage (``components/deploy.py``): roll the new champion out to KServe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from churn.errors import ChurnError

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
) -> dict[str, Any]:
    """Roll ``version`` out to KServe (mode ``cluster``) or write the manifest it would apply (``local``).

    The manifest is written in both modes, so the KFP UI shows what was (or would be) applied.
    An empty ``namespace`` is the settings' (``CHURN_DEPLOY__NAMESPACE``, the chart's namespace).
    """
    from mlflow import MlflowClient

    from churn.config import get_settings
    from churn.deploy import ServingTarget, apply, inference_service, storage_uri, write_manifest
    from churn.registry.mlflow_registry import connect_registry

    if mode not in ("local", "cluster"):
        raise ChurnError(f"deploy mode must be local or cluster, not {mode!r}")
    connect_registry(tracking_uri)
    download_uri = str(MlflowClient().get_model_version_download_uri(model_name, version))
    storage = download_uri if mode == "local" and not download_uri.startswith("s3://") else storage_uri(download_uri)
    target = ServingTarget.from_settings(get_settings(), name=model_name, namespace=namespace)
    manifest = inference_service(target, storage, model_version=version, canary_percent=canary_percent)
    rollout = write_manifest(manifest, Path(manifest_path))
    if mode == "cluster":
        from kubernetes import client, config

        config.load_incluster_config()
        rollout = apply(manifest, client.CustomObjectsApi(), timeout=timeout)
    return {"applied": rollout.applied, "ready": rollout.ready, "message": rollout.message, "storage_uri": storage}
