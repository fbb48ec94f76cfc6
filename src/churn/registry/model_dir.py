"""The layout of a churn model directory: which files it holds beside the estimator, and reading them.

A model is logged with its native MLflow flavor; ``extra_files`` beside the estimator carry
what serving, scoring and monitoring need from the same place: the fitted feature pipeline,
``churn_model.json`` (family, threshold, feature names), the monitoring reference profile and
a sample of training rows, and the risk deciles' cut points. A downloaded model directory
(as KServe's storage initializer lays it out) is read back here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import joblib
import numpy as np
import pandas as pd

from churn.errors import ChurnError
from churn.training.models import ChurnModel

if TYPE_CHECKING:
    from churn.monitoring.reference import ReferenceProfile

PIPELINE_FILE = "feature_pipeline.joblib"
MODEL_INFO_FILE = "churn_model.json"
#: The monitoring reference profile (:class:`churn.monitoring.reference.ReferenceProfile`) of the training split.
REFERENCE_FILE = "monitoring_reference.json"
#: A sample of the training rows, for the Evidently report of a monitoring run.
REFERENCE_SAMPLE_FILE = "monitoring_reference_sample.parquet"
#: The cut points of the risk deciles on the training split (batch scoring's ``risk_decile``).
RISK_DECILES_FILE = "risk_deciles.json"
#: The MLflow flavor each model family is logged with.
FLAVORS = {"logistic_regression": "sklearn", "random_forest": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm"}


def write_model_files(
    model: ChurnModel,
    folder: Path,
    reference: ReferenceProfile | None = None,
    reference_sample: pd.DataFrame | None = None,
    risk_deciles: list[float] | None = None,
) -> list[str]:
    """Write a model's extra files into ``folder``; return their paths, the feature pipeline first."""
    pipeline = folder / PIPELINE_FILE
    joblib.dump(model.features, pipeline)
    info = folder / MODEL_INFO_FILE
    info.write_text(
        json.dumps(
            {
                "family": model.family,
                "threshold": model.threshold,
                "feature_names": model.features.get_feature_names_out().tolist(),
                "params": model.params,
            },
            indent=2,
            default=str,
        )
    )
    files = [str(pipeline), str(info)]
    if reference is not None:
        (folder / REFERENCE_FILE).write_text(json.dumps(reference.to_dict(), indent=1))
        files.append(str(folder / REFERENCE_FILE))
    if reference_sample is not None:
        reference_sample.to_parquet(folder / REFERENCE_SAMPLE_FILE, index=False)
        files.append(str(folder / REFERENCE_SAMPLE_FILE))
    if risk_deciles is not None:
        files.append(str(write_risk_deciles(risk_deciles, folder, rows=reference.rows if reference else 0)))
    return files


def write_risk_deciles(edges: list[float], folder: Path, *, rows: int) -> Path:
    """The cut points as ``risk_deciles.json`` in ``folder`` (an extra file of the logged model)."""
    path = folder / RISK_DECILES_FILE
    path.write_text(json.dumps({"edges": edges, "fitted_on": "training split", "rows": rows}, indent=2))
    return path


def read_risk_deciles(model_dir: Path) -> np.ndarray:
    """The cut points stored in a downloaded model directory.

    Raises:
        ChurnError: The model was logged without them (trained before batch scoring existed).

    """
    file = model_dir / "extra_files" / RISK_DECILES_FILE
    if not file.is_file():
        raise ChurnError(f"model {model_dir} has no risk decile cut points ({RISK_DECILES_FILE}); retrain it")
    edges = np.asarray(json.loads(file.read_text())["edges"], dtype=np.float64)
    if edges.shape != (9,) or np.any(np.diff(edges) < 0):
        raise ChurnError(f"{file} must hold nine increasing cut points")
    return edges


def reference_from_dir(path: Path) -> ReferenceProfile:
    """The reference profile inside a downloaded model directory."""
    # The profile's type belongs to monitoring, a layer above the registry: imported when a
    # profile is read, so that the registry (and the serving image) never load monitoring otherwise.
    from churn.monitoring.reference import ReferenceProfile

    file = path / "extra_files" / REFERENCE_FILE
    if not file.is_file():
        raise ChurnError(f"model {path} has no monitoring reference ({REFERENCE_FILE}); retrain it to log one")
    return ReferenceProfile.from_dict(json.loads(file.read_text()))


def reference_sample_from_dir(path: Path) -> pd.DataFrame | None:
    """The sample of training rows inside a downloaded model directory (None when absent)."""
    file = path / "extra_files" / REFERENCE_SAMPLE_FILE
    if not file.is_file():
        return None
    import pyarrow.parquet as pq

    frame: pd.DataFrame = pq.read_table(file).to_pandas(date_as_object=False)
    return frame


def load_model_dir(path: Path) -> ChurnModel:
    """Load a churn model from a downloaded MLflow model directory (as KServe lays it out)."""
    import mlflow

    info_file = path / "extra_files" / MODEL_INFO_FILE
    if not info_file.is_file():
        raise ChurnError(f"{path} is not a churn model directory: {info_file.name} is missing")
    info = json.loads(info_file.read_text())
    flavor = FLAVORS[info["family"]]
    loader = {"sklearn": mlflow.sklearn, "xgboost": mlflow.xgboost, "lightgbm": mlflow.lightgbm}[flavor]
    estimator = loader.load_model(str(path))
    features = joblib.load(path / "extra_files" / PIPELINE_FILE)
    return ChurnModel(info["family"], features, estimator, float(info["threshold"]), info.get("params", {}))
