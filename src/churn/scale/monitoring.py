"""Drift statistics on Dask: PSI bin counts and category counts per partition, summed on the driver.

Each partition is counted with the pandas path's own functions (``numeric_values`` and
``bin_counts`` on the reference profile's edges, ``category_counts``), so the totals are
the pandas path's counts exactly; only a few small arrays per partition reach the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from churn.errors import ChurnError
from churn.monitoring.reference import ReferenceProfile, category_counts, numeric_values
from churn.monitoring.stats import bin_counts
from churn.scale.frames import compute

if TYPE_CHECKING:
    import dask.dataframe as dd


@dataclass(frozen=True)
class DriftCounts:
    """What the drift checks count on current rows.

    Attributes:
        rows: Current rows.
        numeric: Numeric column -> rows per reference bin, then missing values.
        categorical: Categorical column -> (categories in order of first appearance, their
            counts followed by the count of missing values), as ``category_counts`` gives them.

    """

    rows: int
    numeric: dict[str, np.ndarray]
    categorical: dict[str, tuple[tuple[str, ...], np.ndarray]]


def _count_partition(
    part: pd.DataFrame, edges: dict[str, np.ndarray], categorical: Sequence[str]
) -> tuple[int, dict[str, np.ndarray], dict[str, tuple[tuple[str, ...], np.ndarray]]]:
    numeric = {name: bin_counts(numeric_values(part[name], name), e) for name, e in edges.items()}
    return len(part), numeric, {name: category_counts(part[name]) for name in categorical}


def drift_counts(profile: ReferenceProfile, current: dd.DataFrame) -> DriftCounts:
    """Count current rows on the reference profile's bins and categories, partition by partition.

    Raises:
        ChurnError: ``current`` lacks a profiled column or has a non-numeric value in a numeric one.

    """
    from dask import delayed

    absent = [c for c in [*profile.numeric, *profile.categorical] if c not in current.columns]
    if absent:
        raise ChurnError(f"current data lacks column(s): {', '.join(absent)}")
    edges = {name: np.asarray(ref.edges, dtype=np.float64) for name, ref in profile.numeric.items()}
    categorical = list(profile.categorical)
    tasks = [delayed(_count_partition)(part, edges, categorical) for part in current.to_delayed()]
    rows = 0
    numeric = {name: np.zeros(e.size + 2, dtype=np.int64) for name, e in edges.items()}
    seen: dict[str, dict[str, int]] = {name: {} for name in categorical}
    missing = dict.fromkeys(categorical, 0)
    for n, part_numeric, part_categorical in compute(*tasks, what="drift counts"):
        rows += n
        for name, counts in part_numeric.items():
            numeric[name] += counts
        for name, (names, counts) in part_categorical.items():
            totals = seen[name]
            for category, count in zip(names, counts[:-1], strict=True):
                totals[category] = totals.get(category, 0) + int(count)
            missing[name] += int(counts[-1])
    if rows == 0:
        raise ChurnError("current data is empty: there are no rows to compare")
    return DriftCounts(
        rows=rows,
        numeric=numeric,
        categorical={
            name: (tuple(seen[name]), np.array([*seen[name].values(), missing[name]], dtype=np.int64))
            for name in categorical
        },
    )
