"""A real MLflow registry (sqlite) holding a rollout's two versions: v4 the stable champion, v5 the gate's new one.

The gate has promoted v5 (``@champion`` on it), as it has when the deploy step starts. Their
artifacts are named by s3:// sources only: nothing here downloads a model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MODEL = "churn-model"
STABLE, CANARY = "4", "5"
STORAGE = {STABLE: "s3://mlflow/1/models/m-stable/artifacts", CANARY: "s3://mlflow/1/models/m-canary/artifacts"}


def make_registry(root: Path) -> str:
    """Point MLflow at a fresh sqlite store with versions 1..5 of ``MODEL`` (4 and 5 promoted, @champion on 5)."""
    from mlflow import MlflowClient

    from churn.registry.mlflow_registry import CHAMPION, connect_registry

    uri = f"sqlite:///{root}/mlflow.db"
    connect_registry(uri)
    client = MlflowClient()
    client.create_registered_model(MODEL)
    for number in range(1, 6):
        version = str(number)
        source = STORAGE.get(version, f"s3://mlflow/1/models/m-{number}/artifacts")
        client.create_model_version(MODEL, source)
        if version in (STABLE, CANARY):
            client.set_model_version_tag(MODEL, version, "gate_decision", "promoted")
    client.set_registered_model_alias(MODEL, CHAMPION, CANARY)
    return uri


def copy_registry(template: Path, root: Path) -> str:
    """Point MLflow at a copy of the store ``make_registry`` made in ``template`` (a fresh store takes seconds)."""
    from churn.registry.mlflow_registry import connect_registry

    shutil.copyfile(template / "mlflow.db", root / "mlflow.db")
    uri = f"sqlite:///{root}/mlflow.db"
    connect_registry(uri)
    return uri


def champion() -> str:
    """The version ``@champion`` names now."""
    from mlflow import MlflowClient

    from churn.registry.mlflow_registry import CHAMPION

    return str(MlflowClient().get_model_version_by_alias(MODEL, CHAMPION).version)


def tags(version: str) -> dict[str, str]:
    """A version's tags."""
    from mlflow import MlflowClient

    return dict(MlflowClient().get_model_version(MODEL, version).tags)
