"""How small a shift the drift checks see: detection curves of our checks beside Evidently's.

A detection curve multiplies numeric columns by a factor (1.05 = every value 5% larger,
a shift the generator's scenarios do not make) and counts, over independent seeds, how
often each column is flagged. Drift tests are per column, so one frame with every numeric
column stretched by the same factor answers for all columns at once. Factor 1 is the
unchanged population: every flag there is a false alarm.

Both contenders see the same frames: ours (:func:`churn.monitoring.checks.check_drift` from the
profile fitted on the reference rows; "detected" = level warn or alert) and Evidently's
``DataDriftPreset`` (its per-column drift flag). The benchmark
(``scripts/bench_drift_sensitivity.py``) prints the whole curve; a unit test checks a
corner of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from churn.monitoring.reference import NUMERIC_COLUMNS

#: Ours (PSI and the Wasserstein rule), PSI alone (the checks before the Wasserstein rule), Evidently.
CONTENDERS = ("churn", "psi", "evidently")
#: Rows of the reference frame of each seed (the size of a training split of a small export).
REFERENCE_ROWS = 20_000
#: Rows of the current frame of each seed (the issue's 5,000).
CURRENT_ROWS = 5_000
SNAPSHOT = "2026-01-05"


def stretched(frame: pd.DataFrame, factor: float, columns: Sequence[str] = NUMERIC_COLUMNS) -> pd.DataFrame:
    """A copy of ``frame`` with ``columns`` multiplied by ``factor`` (as floats, missing values kept)."""
    out = frame.copy()
    for name in columns:
        out[name] = out[name].astype("float64") * factor
    return out


def detected(contender: str, reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str]) -> set[str]:
    """The numeric ``columns`` that ``contender`` (see :data:`CONTENDERS`) calls drifted."""
    if contender in ("churn", "psi"):
        from churn.config import MonitoringSettings
        from churn.monitoring.checks import check_drift
        from churn.monitoring.reference import fit_reference

        off = {"wasserstein_warn": math.inf, "wasserstein_alert": math.inf} if contender == "psi" else {}
        settings = MonitoringSettings(**off)
        report = check_drift(fit_reference(reference, numeric=columns, categorical=()), current, settings=settings)
        return {f.feature for f in report.features if f.level != "ok"}
    if contender == "evidently":
        from churn.monitoring.evidently_report import evidently_drift, evidently_drifted_columns

        snapshot = evidently_drift(reference, current, numeric=columns, categorical=())
        return set(evidently_drifted_columns(snapshot)) & set(columns)
    raise ValueError(f"unknown contender {contender!r}; known: {', '.join(CONTENDERS)}")


@dataclass
class DetectionCurve:
    """Detections per (contender, factor, column), counted over seeds."""

    factors: tuple[float, ...]
    columns: tuple[str, ...]
    seeds: int
    #: (contender, factor) -> column -> seeds in which the column was flagged.
    counts: dict[tuple[str, float], dict[str, int]] = field(default_factory=dict)
    #: contender -> unchanged seeds in which any column was flagged.
    false_alarm_runs: dict[str, int] = field(default_factory=dict)

    def rate(self, contender: str, factor: float, column: str) -> int:
        return self.counts[(contender, factor)][column]

    def smallest_detected(self, contender: str, column: str, needed: int) -> float | None:
        """The smallest factor > 1 flagging ``column`` in ``needed`` seeds or more (and so does every larger one)."""
        found = None
        for factor in sorted((f for f in self.factors if f > 1), reverse=True):
            if self.rate(contender, factor, column) < needed:
                break
            found = factor
        return found

    def false_alarms(self, contender: str, column: str) -> int:
        """Seeds in which ``column`` was flagged although nothing changed (factor 1)."""
        return self.rate(contender, 1.0, column)

    def runs_with_false_alarm(self, contender: str) -> int:
        """Unchanged seeds in which any column was flagged."""
        return self.false_alarm_runs.get(contender, 0)


def detection_curve(
    factors: Sequence[float],
    seeds: int,
    *,
    columns: Sequence[str] = NUMERIC_COLUMNS,
    contenders: Sequence[str] = CONTENDERS,
    reference_rows: int = REFERENCE_ROWS,
    current_rows: int = CURRENT_ROWS,
    progress: Callable[[int, int], None] | None = None,
) -> DetectionCurve:
    """Count each contender's detections of each column at each factor over ``seeds`` seeds.

    Seed ``i`` draws a fresh reference (``reference_rows``) and a fresh current frame
    (``current_rows``) of the same undrifted population and snapshot date; the current frame
    is then stretched by each factor. Factor 1 is always included (the false alarms).

    Args:
        factors: Multiplicative shifts to try.
        seeds: Independent repetitions.
        columns: Numeric columns to stretch and test.
        contenders: "churn" and/or "evidently".
        reference_rows: Rows of each reference frame.
        current_rows: Rows of each current frame.
        progress: Called with (seeds done, seeds) after each seed.

    """
    from churn.data import generate_customers

    grid = tuple(sorted({1.0, *factors}))
    curve = DetectionCurve(grid, tuple(columns), seeds)
    for contender in contenders:
        for factor in grid:
            curve.counts[(contender, factor)] = dict.fromkeys(columns, 0)
        curve.false_alarm_runs[contender] = 0
    for seed in range(seeds):
        reference = generate_customers(reference_rows, SNAPSHOT, seed=10_000 + seed).frame
        current = generate_customers(current_rows, SNAPSHOT, seed=20_000 + seed).frame
        for factor in grid:
            frame = current if factor == 1.0 else stretched(current, factor, columns)
            for contender in contenders:
                flagged = detected(contender, reference, frame, columns)
                for name in flagged:
                    curve.counts[(contender, factor)][name] += 1
                if factor == 1.0 and flagged:
                    curve.false_alarm_runs[contender] += 1
        if progress:
            progress(seed + 1, seeds)
    return curve
