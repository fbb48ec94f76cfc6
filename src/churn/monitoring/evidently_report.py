"""An Evidently (0.7 API) data-drift report as a self-contained HTML page.

Evidently draws the per-column distributions a person wants to look at after an alert;
the verdict itself comes from :func:`churn.monitoring.checks.check_drift`, which is much faster
and works from the stored reference profile. Evidently needs the reference rows, so the
HTML is made where the champion's training frame is at hand, on a random sample when the
frames are large.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn.data.schema import CATEGORY_COLUMNS
from churn.monitoring.reference import NUMERIC_COLUMNS, check_probabilities, require_columns

#: Column that carries the predicted churn probabilities in the Evidently datasets.
PROBABILITY_COLUMN = "churn_probability"


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    reference_probabilities: np.ndarray | Sequence[float] | None = None,
    current_probabilities: np.ndarray | Sequence[float] | None = None,
    numeric: Sequence[str] = NUMERIC_COLUMNS,
    categorical: Sequence[str] = CATEGORY_COLUMNS,
    max_rows: int | None = None,
    seed: int = 0,
) -> Any:
    """Run Evidently's ``DataDriftPreset`` over the same columns our checks use.

    Args:
        reference: Reference rows (the champion's training frame).
        current: Current rows.
        reference_probabilities: Predicted probabilities of the reference rows (optional;
            added as a numeric column when both sides have them).
        current_probabilities: Predicted probabilities of the current rows (optional).
        numeric: Numeric columns.
        categorical: Categorical columns.
        max_rows: Sample each side down to this many rows first (None = all rows).
        seed: Seed of that sample.

    Returns:
        The Evidently ``Snapshot`` (``.dict()``, ``.get_html_str()``); see
        :func:`evidently_drifted_columns`.

    Raises:
        ChurnError: Either frame is empty or lacks a column.

    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [*numeric, *categorical]
    require_columns(reference, columns, "reference")
    require_columns(current, columns, "current")
    ref, cur = reference[columns].copy(), current[columns].copy()
    if reference_probabilities is not None and current_probabilities is not None:
        ref[PROBABILITY_COLUMN] = check_probabilities(reference_probabilities, len(ref), "reference")
        cur[PROBABILITY_COLUMN] = check_probabilities(current_probabilities, len(cur), "current")
        numeric = [*numeric, PROBABILITY_COLUMN]
    if max_rows is not None:
        ref, cur = _sample(ref, max_rows, seed), _sample(cur, max_rows, seed + 1)
    # Evidently wants plain dtypes: nullable integers as float, categories as strings.
    for frame in (ref, cur):
        for name in numeric:
            frame[name] = frame[name].astype("float64")
        for name in categorical:
            frame[name] = frame[name].astype(object)
    definition = DataDefinition(numerical_columns=list(numeric), categorical_columns=list(categorical))
    report = Report([DataDriftPreset()])
    return report.run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
    )


def evidently_drifted_columns(snapshot: Any) -> list[str]:
    """Columns Evidently's per-column tests call drifted, in report order.

    A p-value method drifts below its threshold, a distance method at or above it (as in
    Evidently's own stattests).
    """
    drifted = []
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith(":ValueDrift"):
            continue
        value, threshold = float(metric["value"]), float(config["threshold"])
        is_p_value = "p_value" in str(config.get("method", ""))
        if (value < threshold) if is_p_value else (value >= threshold):
            drifted.append(str(config["column"]))
    return drifted


def write_evidently_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    path: str | Path,
    *,
    reference_probabilities: np.ndarray | Sequence[float] | None = None,
    current_probabilities: np.ndarray | Sequence[float] | None = None,
    max_rows: int | None = 100_000,
    seed: int = 0,
) -> Path:
    """Write Evidently's data-drift report of ``current`` against ``reference`` as HTML, atomically.

    Args:
        reference: Reference rows (the champion's training frame).
        current: Current rows.
        path: Destination ``.html`` file.
        reference_probabilities: Predicted probabilities of the reference rows (optional).
        current_probabilities: Predicted probabilities of the current rows (optional).
        max_rows: Sample each side down to this many rows (Evidently is slow on millions).
        seed: Seed of that sample.

    Returns:
        ``path``.

    """
    from churn.storage import atomic_path

    snapshot = evidently_drift(
        reference,
        current,
        reference_probabilities=reference_probabilities,
        current_probabilities=current_probabilities,
        max_rows=max_rows,
        seed=seed,
    )
    with atomic_path(path) as tmp:
        tmp.write_text(snapshot.get_html_str(as_iframe=False), encoding="utf-8")
    return Path(path)


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame
    return frame.sample(n=rows, random_state=seed)
