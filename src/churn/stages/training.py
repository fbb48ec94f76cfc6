"""The training stages (``components/training.py``): train one family, select the winner on the test split."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn.data.schema import LABEL
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
    """Read a split written by :func:`split` (dates as ``datetime64``, as the feature code prefers)."""
    import pyarrow.parquet as pq

    if Path(path).is_dir():  # the Dask engine's dataset: its folder of parts, or the S3 prefix it points at
        from churn.scale.dataset import arrow_dataset

        folder: pd.DataFrame = arrow_dataset(path).to_table().to_pandas(date_as_object=False)
        return folder
    frame: pd.DataFrame = pq.read_table(path).to_pandas(date_as_object=False)
    return frame


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

    Split folders (the Dask engine's) train on a Dask cluster: see :func:`churn.scale.steps.train`.
    """
    from churn.training.models import train_family

    if Path(train_path).is_dir():
        from churn.scale import steps as dask_steps
        from churn.scale.training import DASK_FAMILIES

        # The sampled families fit a seeded sample here: no cluster to start for them.
        cluster = (
            dask_steps.engine_client(name=f"churn-train-{family.replace('_', '-')}")
            if family in DASK_FAMILIES
            else nullcontext()
        )
        with cluster as client:
            model = dask_steps.train(
                family, client, train_path, validation_path, params=params, n_jobs=n_jobs, seed=seed
            )
        save_model(model, model_dir)
        return model.info
    model = train_family(family, read_split(train_path), read_split(validation_path), params, n_jobs=n_jobs, seed=seed)
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
    within :data:`churn.scale.steps.SINGLE_NODE_SAMPLE_ROWS` rows, is read into memory (the same
    probabilities, without a cluster's start-up).
    """
    if Path(test_path).is_dir() and not fits_in_process(test_path):
        from churn.scale import steps as dask_steps

        with dask_steps.engine_client(name="churn-evaluate"):
            yield dask_steps.scorer(test_path)
        return
    test = read_split(test_path)
    yield test[LABEL].to_numpy(dtype=np.int64), lambda model: model.predict_proba(test)


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


def fits_in_process(path: str | Path) -> bool:
    """Whether a Dask dataset is small enough to read into this process (a cluster would only add its start-up)."""
    from churn.scale import steps as dask_steps

    return dask_steps.fits_in_process(path)
