"""The training stages (``components/training.py``): train one family, select the winner on the test split."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn.engine import engine_for
from churn.errors import ChurnError
from churn.storage import atomic_path, write_json

# Each task is a fresh interpreter that runs one step: heavy libraries (scikit-learn,
# pandera, MLflow) are imported by the functions that use them, not by every task.
if TYPE_CHECKING:
    from churn.training.models import ChurnModel


MODEL_FILE = "churn_model.joblib"
INFO_FILE = "info.json"
SELECTION_FILE = "selection.json"


def read_split(path: str | Path) -> pd.DataFrame:
    """Read a split written by :func:`churn.stages.data.split` (dates as ``datetime64``, as the feature code prefers).

    A file, or the Dask engine's dataset (its folder of parts, or the S3 prefix it points at).
    """
    return engine_for(None, path).read(path)


def train(
    family: str,
    train_path: str | Path,
    validation_path: str | Path,
    model_dir: str | Path,
    *,
    params: dict[str, Any],
    n_jobs: int = 2,
    seed: int = 42,
) -> dict[str, Any]:
    """Train one family; save the model and its info (metrics, timings) into ``model_dir``.

    Split folders (the Dask engine's) train on a Dask cluster: see :func:`churn.engine.dask.stages.train`.
    """
    engine = engine_for(None, train_path)
    model = engine.train(family, train_path, validation_path, params=params, n_jobs=n_jobs, seed=seed)
    save_model(model, model_dir)
    return model.info


def save_model(model: ChurnModel, folder: str | Path) -> None:
    """Save a trained model and its info between pipeline steps."""
    import joblib

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / MODEL_FILE) as tmp:
        joblib.dump(model, tmp)
    write_json(
        {"family": model.family, "threshold": model.threshold, "params": model.params, **model.info}, folder / INFO_FILE
    )


def load_model(folder: str | Path) -> ChurnModel:
    """Load a model saved by :func:`save_model`."""
    import joblib

    from churn.training.models import ChurnModel

    model = joblib.load(Path(folder) / MODEL_FILE)
    if not isinstance(model, ChurnModel):
        raise ChurnError(f"{folder} does not hold a churn model")
    return model


@contextmanager
def scoring_on_test(test_path: str | Path) -> Iterator[tuple[np.ndarray, Callable[[ChurnModel], np.ndarray]]]:
    """The test split's labels and a function giving a model's probabilities on its rows.

    A split folder (the Dask engine's) larger than one process should hold is scored partition
    by partition on a Dask cluster that lives as long as the ``with`` block; a file, or a folder
    within :data:`churn.engine.dask.stages.SINGLE_NODE_SAMPLE_ROWS` rows, is read into memory (the same
    probabilities, without a cluster's start-up).
    """
    with engine_for(None, test_path).test_scorer(test_path) as scored:
        yield scored


def select(model_dirs: dict[str, str | Path], test_path: str | Path, winner_dir: str | Path) -> dict[str, Any]:
    """Evaluate every candidate on the test split and keep the one with the best validation ROC-AUC.

    Selection uses validation ROC-AUC: it ranks customers for a retention campaign
    independently of the churn rate and of the threshold, and the test split stays
    untouched until the final numbers. Returns a comparison, the winner's test metrics
    and its ROC curve and confusion matrix.
    """
    from churn.training.evaluate import classification_metrics, curves

    with scoring_on_test(test_path) as (y, score):
        rows = []
        probabilities = {}
        for family, folder in model_dirs.items():
            model = load_model(folder)
            start = time.perf_counter()
            p = score(model)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "family": family,
                    "val_roc_auc": model.info["validation"]["roc_auc"],
                    "val_pr_auc": model.info["validation"]["pr_auc"],
                    "threshold": model.threshold,
                    "test": classification_metrics(y, p, model.threshold),
                    "fit_seconds": model.info["fit_seconds"],
                    "predict_seconds": seconds,
                }
            )
            probabilities[family] = p
    best = max(rows, key=lambda r: r["val_roc_auc"])
    winner = Path(winner_dir)
    if winner.exists():
        shutil.rmtree(winner)
    shutil.copytree(model_dirs[best["family"]], winner)
    selection = {
        "winner": best["family"],
        "candidates": rows,
        "winner_test": best["test"],
        "curves": curves(y, probabilities[best["family"]], best["threshold"]),
    }
    write_json(selection, winner / SELECTION_FILE)
    return selection


def read_selection(winner_dir: str | Path) -> dict[str, Any]:
    """The selection written beside the winning model by :func:`select`."""
    return dict(json.loads((Path(winner_dir) / SELECTION_FILE).read_text()))
