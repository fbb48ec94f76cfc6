"""Everything churn-mlops does with MLflow, in one place.

A candidate is logged with its native flavor (scikit-learn, XGBoost or LightGBM) on the
model matrix, and the fitted feature pipeline plus ``churn_model.json`` (family,
threshold, feature names) travel inside the model directory as extra files: whoever
downloads a model version (KServe's storage initializer, the promotion gate, the
monitoring job) gets the estimator and its features from one place. What a model directory
holds, and reading it back, is :mod:`churn.registry.model_dir`.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn.data.schema import LABEL
from churn.errors import ChurnError
from churn.registry.model_dir import FLAVORS, load_model_dir, reference_from_dir, write_model_files
from churn.training.evaluate import classification_metrics
from churn.training.models import ChurnModel

if TYPE_CHECKING:
    from churn.monitoring.reference import ReferenceProfile

CHALLENGER = "challenger"
CHAMPION = "champion"


def connect(
    tracking_uri: str, *, experiment: str, artifact_location: str | None = None, timeout: int = 10, retries: int = 2
) -> str:
    """Point MLflow at ``tracking_uri`` and make sure ``experiment`` exists; return its id.

    A tracking server that does not answer fails here, within ``timeout`` seconds, with a
    message naming it, before anything is trained or logged.
    """
    import mlflow

    connect_registry(tracking_uri, timeout=timeout, retries=retries)
    try:
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            experiment_id = str(mlflow.create_experiment(experiment, artifact_location=artifact_location))
        else:
            experiment_id = str(found.experiment_id)
        mlflow.set_experiment(experiment_id=experiment_id)  # every run from here on, nested ones too
    except Exception as exc:  # MLflow raises many types for an unusable store
        raise ChurnError(f"MLflow tracking at {tracking_uri} is not usable: {exc}") from exc
    return experiment_id


def connect_registry(tracking_uri: str, *, timeout: int = 10, retries: int = 2) -> None:
    """Point MLflow tracking and registry at ``tracking_uri`` with bounded retries; fail fast if unreachable."""
    import mlflow

    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(timeout)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if tracking_uri.startswith(("http://", "https://")):
        _check_server(tracking_uri, timeout)
    elif tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


@contextmanager
def mlflow_errors(uri: str, action: str) -> Iterator[None]:
    """Turn MLflow's refusals (401 wrong or missing credentials, 403 no permission) into one clear line.

    The line names the server, the user and what was refused, never the password.
    """
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        status: int | None = exc.get_http_status_code()  # type: ignore[no-untyped-call]
        user = os.environ.get("MLFLOW_TRACKING_USERNAME") or "(anonymous)"
        if status == 401 or exc.error_code == "UNAUTHENTICATED":
            raise ChurnError(_refused(uri, user)) from None
        if status == 403 or exc.error_code == "PERMISSION_DENIED":
            raise ChurnError(f"MLflow at {uri}: user {user} may not {action} (403 permission denied)") from None
        if status is not None and 400 <= status < 500:
            raise ChurnError(f"MLflow at {uri} refused to {action}: {exc.message}") from None
        raise


def _refused(uri: str, user: str) -> str:
    return (
        f"MLflow at {uri} refused the credentials of user {user} (401): "
        "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    )


@contextmanager
def mlflow_identity(username: str | None, password: str | None) -> Iterator[None]:
    """Talk to MLflow as ``username`` inside the block (MLflow reads MLFLOW_TRACKING_USERNAME/_PASSWORD per request)."""
    from churn.config import environment

    if not username:
        yield
        return
    with environment({"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password or ""}):
        yield


def _check_server(uri: str, timeout: int) -> None:
    """Fail fast, naming the server (and the user, never the password), when it is down or refuses us.

    ``/health`` needs no credentials; one cheap authenticated read then proves the credentials
    before any task trains for minutes and only then finds them wrong.
    """
    base = uri.rstrip("/")
    try:
        with urllib.request.urlopen(base + "/health", timeout=timeout) as response:
            if response.status != 200:
                raise ChurnError(f"MLflow tracking server {uri} answered {response.status} on /health")
        probe = urllib.request.Request(base + "/api/2.0/mlflow/experiments/search?max_results=1")
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        if user:
            token = base64.b64encode(f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()).decode()
            probe.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(probe, timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise ChurnError(_refused(uri, user or "(anonymous)")) from None
        if exc.code != 403:  # 403: authenticated, only not allowed to list experiments
            raise ChurnError(f"MLflow tracking server {uri} answered {exc.code} to an authenticated read") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ChurnError(f"MLflow tracking server {uri} is unreachable: {reason}") from None


def log_candidate(
    model: ChurnModel,
    *,
    example: pd.DataFrame,
    metrics: dict[str, float],
    tags: dict[str, str],
    reference: ReferenceProfile | None = None,
    reference_sample: pd.DataFrame | None = None,
    risk_deciles: list[float] | None = None,
) -> str:
    """Log one trained model into the active (nested) run; return its model URI.

    Args:
        model: The trained model.
        example: A few raw records: the input example (as the model matrix) and the
            raw-record example the serving transformer documents.
        metrics: Flat metric names -> values (e.g. ``val_roc_auc``, ``test_f1``).
        tags: Run tags (data fingerprint, git commit, KFP run id...).
        reference: The monitoring reference profile of the training split; it travels
            inside the model directory, so whoever loads the champion can monitor it.
        reference_sample: A few thousand training rows (raw), kept beside it for the
            Evidently report.
        risk_deciles: Cut points of the risk deciles on the training split (batch scoring's
            ``risk_decile``), stored beside the reference.

    """
    import mlflow
    from mlflow.models import infer_signature

    matrix = model.features.transform(example)
    signature = infer_signature(matrix, model.predict_matrix(matrix))
    mlflow.log_params({"family": model.family, **{k: str(v) for k, v in model.params.items()}})
    mlflow.log_metrics(metrics)
    mlflow.set_tags(tags)
    mlflow.log_dict(json.loads(example.to_json(orient="records", date_format="iso")), "raw_input_example.json")
    with tempfile.TemporaryDirectory() as tmp:
        extra = write_model_files(model, Path(tmp), reference, reference_sample, risk_deciles)
        mlflow.log_artifact(extra[0], artifact_path="feature_pipeline")
        flavor = FLAVORS[model.family]
        common: dict[str, Any] = {
            "name": "model",
            "pip_requirements": _requirements(flavor),
            "signature": signature,
            "input_example": matrix[:5],
            "extra_files": extra,
        }
        if flavor == "sklearn":
            info = mlflow.sklearn.log_model(model.estimator, serialization_format="cloudpickle", **common)
        elif flavor == "xgboost":
            info = mlflow.xgboost.log_model(model.estimator, **common)
        else:
            info = mlflow.lightgbm.log_model(model.estimator, **common)
    return str(info.model_uri)


def register_challenger(model_uri: str, name: str, *, tags: dict[str, str]) -> str:
    """Register ``model_uri`` as a new version of ``name`` and point ``@challenger`` at it."""
    import mlflow
    from mlflow import MlflowClient

    version = mlflow.register_model(model_uri, name, tags=tags)
    MlflowClient().set_registered_model_alias(name, CHALLENGER, version.version)
    return str(version.version)


def load_churn_model(model_uri: str) -> ChurnModel:
    """Load a registered or logged churn model (estimator, feature pipeline, threshold) from MLflow.

    Args:
        model_uri: ``models:/churn-model@champion``, ``models:/churn-model/3``, ``runs:/...``
            or a local model directory.

    """
    return load_model_dir(download_model(model_uri))


def download_model(model_uri: str) -> Path:
    """The local directory of a model: ``model_uri`` itself when it is one, else its download."""
    import mlflow

    try:
        return Path(model_uri) if Path(model_uri).is_dir() else Path(mlflow.artifacts.download_artifacts(model_uri))
    except Exception as exc:
        raise ChurnError(f"cannot fetch model {model_uri}: {exc}") from exc


def resolve_version(model_uri: str) -> str:
    """Registry version behind ``models:/name@alias`` or ``models:/name/N``; the URI itself otherwise."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if not model_uri.startswith("models:/"):
        return model_uri
    name, _, ref = model_uri.removeprefix("models:/").partition("@")
    try:
        if ref:
            return str(MlflowClient().get_model_version_by_alias(name, ref).version)
    except MlflowException as exc:
        raise ChurnError(f"cannot resolve {model_uri}: {exc.message}") from None
    return model_uri.rsplit("/", 1)[-1]


def load_reference(model_uri: str) -> ReferenceProfile:
    """The monitoring reference profile logged with a model (see :func:`log_candidate`).

    Args:
        model_uri: ``models:/churn-model@champion``, ``models:/churn-model/3``, ``runs:/...``
            or a local model directory.

    Raises:
        ChurnError: The model cannot be fetched, or was logged without a reference profile.

    """
    return reference_from_dir(download_model(model_uri))


def _requirements(flavor: str) -> list[str]:
    """Pinned requirements of a logged model (stated, so MLflow need not probe the environment)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["mlflow", "numpy", "pandas", "scikit-learn", "cloudpickle", "churn-mlops"]
    names += {"xgboost": ["xgboost-cpu"], "lightgbm": ["lightgbm"]}.get(flavor, [])
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


@dataclass(frozen=True)
class GateDecision:
    """Outcome of the promotion gate."""

    promoted: bool
    reason: str
    challenger_version: str
    challenger_roc_auc: float
    champion_version: str | None
    champion_roc_auc: float | None
    margin: float

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def promote_if_better(name: str, challenger_version: str, test: pd.DataFrame, *, margin: float) -> GateDecision:
    """Score the challenger and the current champion on the same test rows; move ``@champion`` if earned.

    Each model is scored with its own feature pipeline and estimator. The challenger
    becomes champion when there is no champion, or when its test ROC-AUC beats the
    champion's by at least ``margin``. The alias moves last, and only on success.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    y = test[LABEL].to_numpy(dtype=np.int64)
    challenger = load_churn_model(f"models:/{name}/{challenger_version}")
    challenger_auc = classification_metrics(y, challenger.predict_proba(test), challenger.threshold)["roc_auc"]
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    champion_version = None if current is None else str(current.version)
    champion_auc = None
    if champion_version is None:
        promoted, reason = True, "no champion yet"
    elif champion_version == challenger_version:
        promoted, reason = False, "the challenger already is the champion"
        champion_auc = challenger_auc
    else:
        champion = load_churn_model(f"models:/{name}/{champion_version}")
        champion_auc = classification_metrics(y, champion.predict_proba(test), champion.threshold)["roc_auc"]
        promoted = challenger_auc >= champion_auc + margin
        verb = "beats" if promoted else "does not beat"
        reason = (
            f"challenger v{challenger_version} ROC-AUC {challenger_auc:.4f} {verb} champion v{champion_version} "
            f"{champion_auc:.4f} by the margin {margin}"
        )
    decision = GateDecision(
        promoted, reason, challenger_version, challenger_auc, champion_version, champion_auc, margin
    )
    client.set_model_version_tag(name, challenger_version, "gate_decision", "promoted" if promoted else "rejected")
    client.set_model_version_tag(name, challenger_version, "gate_reason", reason)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger_version)
    return decision


def describe_model(tracking_uri: str, name: str) -> list[str]:
    """Lines that say where ``@champion`` and ``@challenger`` of ``name`` point, for people."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    connect_registry(tracking_uri)
    client = MlflowClient()
    lines = []
    for alias in (CHAMPION, CHALLENGER):
        try:
            version = client.get_model_version_by_alias(name, alias)
        except MlflowException:
            lines.append(f"{name}@{alias}: none")
            continue
        tags = version.tags
        lines.append(
            f"{name}@{alias}: version {version.version} ({tags.get('family', '?')}, test ROC-AUC "
            f"{tags.get('test_roc_auc', '?')}, gate: {tags.get('gate_decision', '-')})"
        )
    return lines
