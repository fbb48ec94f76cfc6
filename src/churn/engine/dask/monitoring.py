"""Drift checks on Dask: each partition counted with the pandas path's own counting, the counts summed.

:func:`churn.monitoring.checks.count_current` counts a partition on the reference's PSI bins,
sketch bins and categories; the counts are additive, so their sum over the partitions is the
whole table's, and :func:`churn.monitoring.checks.check_counts` judges them exactly as the
pandas path does. Only a few small arrays per partition reach the driver, plus one probability
and one label per row for the prediction and ROC-AUC checks (16 bytes a row).
"""

from __future__ import annotations

import functools
import operator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn.config import MonitoringSettings
from churn.data.schema import LABEL
from churn.engine.dask.frames import compute
from churn.errors import ChurnError
from churn.monitoring.checks import CurrentCounts, check_counts, count_current, known_labels
from churn.monitoring.reference import ReferenceProfile, numeric_values

if TYPE_CHECKING:
    import dask.dataframe as dd

    from churn.monitoring.report import DriftReport


def _count_partition(part: pd.DataFrame, profile: ReferenceProfile, chunk_rows: int) -> CurrentCounts:
    return count_current(profile, part, chunk_rows=chunk_rows)


def drift_counts(profile: ReferenceProfile, current: dd.DataFrame, *, chunk_rows: int = 262_144) -> CurrentCounts:
    """Count current rows on the reference profile's bins and categories, partition by partition.

    Raises:
        ChurnError: ``current`` lacks a profiled column, has a non-numeric value in a numeric
            one, or has no rows.

    """
    from dask import delayed

    absent = [c for c in [*profile.numeric, *profile.categorical] if c not in current.columns]
    if absent:
        raise ChurnError(f"current data lacks column(s): {', '.join(absent)}")
    tasks = [delayed(_count_partition)(part, profile, chunk_rows) for part in current.to_delayed()]
    counts: CurrentCounts = functools.reduce(operator.add, compute(*tasks, what="drift counts"))
    if counts.rows == 0:
        raise ChurnError("current data is empty: there are no rows to compare")
    return counts


def _labels(part: pd.DataFrame) -> pd.Series:
    return pd.Series(numeric_values(part[LABEL], LABEL), index=part.index, dtype=np.float64)


def _probabilities(part: pd.DataFrame, model: Any) -> pd.Series:
    return pd.Series(model.predict_proba(part), index=part.index, dtype=np.float64)


def check_drift_dask(
    profile: ReferenceProfile,
    current: dd.DataFrame,
    model: Any = None,
    *,
    settings: MonitoringSettings | None = None,
    reference_roc_auc: float | None = None,
) -> tuple[DriftReport, np.ndarray | None]:
    """The drift report of a Dask DataFrame: the pandas path's ``check_drift``, counted per partition.

    Args:
        profile: The champion's reference profile.
        current: Typed current rows.
        model: The champion (anything with ``predict_proba`` on raw rows); None skips the
            prediction, predicted churn-rate and ROC-AUC checks.
        settings: Thresholds; the configured defaults when omitted.
        reference_roc_auc: Overrides the profile's test ROC-AUC as the yardstick.

    Returns:
        The report and the model's probabilities for every row (None without a model).

    """
    s = settings or MonitoringSettings()
    counts = drift_counts(profile, current, chunk_rows=s.chunk_rows)
    wanted: list[Any] = []
    if model is not None:
        wanted.append(current.map_partitions(_probabilities, model, meta=pd.Series(dtype=np.float64)))
    if LABEL in current.columns:
        wanted.append(current.map_partitions(_labels, meta=pd.Series(dtype=np.float64)))
    computed = list(compute(*wanted, what="drift checks")) if wanted else []
    p = np.asarray(computed.pop(0), dtype=np.float64) if model is not None else None
    labels = None
    if computed:
        values = np.asarray(computed.pop(0), dtype=np.float64)
        labels = known_labels(values)
    report = check_counts(profile, counts, p, labels, settings=s, reference_roc_auc=reference_roc_auc)
    return report, p
