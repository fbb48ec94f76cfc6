"""Fit the feature pipeline on raw data, write the feature table and save the fitted pipeline."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from churn import __version__
from churn.data.schema import ID, LABEL
from churn.errors import ChurnError
from churn.features.pipeline import FeaturePipeline
from churn.storage import atomic_path, write_json, write_parquet

PIPELINE_FILE = "feature_pipeline.joblib"
METADATA_FILE = "feature_pipeline.json"


@dataclass(frozen=True)
class FeatureOutputs:
    """Where :func:`build_features` wrote its outputs."""

    table: Path
    pipeline: Path
    metadata: Path
    rows: int
    features: int


def feature_table(pipeline: FeaturePipeline, raw: pd.DataFrame) -> pd.DataFrame:
    """The model matrix of ``raw`` with its id and label beside it (true probabilities never enter)."""
    matrix = pipeline.transform(raw)
    table = pd.DataFrame(matrix.astype(np.float32), columns=pipeline.get_feature_names_out())
    table.insert(0, ID, raw[ID].to_numpy())
    if LABEL in raw.columns:
        table[LABEL] = raw[LABEL].to_numpy(dtype=np.int8)
    return table


def build_features(
    raw: pd.DataFrame, table_path: Path, pipeline_dir: Path, *, rfm_bins: int = 5, source: str = ""
) -> FeatureOutputs:
    """Fit a :class:`FeaturePipeline` on validated raw data and write its outputs.

    Args:
        raw: Validated raw customers (see :func:`churn.validation.validate_file`).
        table_path: Parquet file for the feature table.
        pipeline_dir: Folder for the fitted pipeline and its metadata.
        rfm_bins: Quantile bins of each RFM score.
        source: Where ``raw`` came from, recorded in the metadata.

    """
    pipeline = FeaturePipeline(rfm_bins=rfm_bins).fit(raw)
    table = feature_table(pipeline, raw)
    write_parquet(table, table_path)
    pipeline_path = save_pipeline(pipeline, pipeline_dir / PIPELINE_FILE)
    metadata = write_json(
        {
            "churn_version": __version__,
            "fitted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "fitted_on": source,
            "rows": len(raw),
            "rfm_bins": rfm_bins,
            "rfm_cut_points": {k: v.tolist() for k, v in pipeline.rfm_cuts_.items()},
            "feature_names": pipeline.get_feature_names_out().tolist(),
        },
        pipeline_dir / METADATA_FILE,
    )
    return FeatureOutputs(table_path, pipeline_path, metadata, len(table), pipeline.n_features_out_)


def save_pipeline(pipeline: FeaturePipeline, path: Path) -> Path:
    """Save a fitted pipeline with joblib, atomically."""
    with atomic_path(path) as tmp:
        joblib.dump(pipeline, tmp)
    return path


def load_pipeline(path: str | Path) -> FeaturePipeline:
    """Load a pipeline saved by :func:`save_pipeline`.

    Raises:
        ChurnError: The file is missing, unreadable, or holds something else.

    """
    try:
        pipeline = joblib.load(path)
    except FileNotFoundError:
        raise ChurnError(f"feature pipeline {path} does not exist") from None
    except Exception as exc:  # joblib/pickle raise many types for a damaged file
        raise ChurnError(f"feature pipeline {path} cannot be loaded: {exc}") from None
    if not isinstance(pipeline, FeaturePipeline):
        raise ChurnError(f"{path} holds a {type(pipeline).__name__}, not a FeaturePipeline")
    return pipeline
