"""Drift and performance checks of current data against a reference profile.

Every check asks two questions and flags a change only when both say yes: is the change
large (PSI, Cramér's V, churn-rate delta or ROC-AUC drop above its threshold), and is it
real (p-value below ``alpha``)? Size alone would let 50 noisy rows raise an alert;
significance alone would flag every column of a million unchanged rows.

- Numeric features: PSI on the reference's quantile bins; missing values form their own
  bin, so a jump in the missing rate is drift too. Empty bins are floored at
  ``psi_epsilon`` (see :func:`churn.monitoring.stats.psi`). PSI only sees rows moving
  between deciles, so a 25% stretch of a skewed column barely moves it; a scale-aware
  second rule catches that: the Wasserstein distance in units of the reference's standard
  deviation (Evidently's default for large samples, same 0.1 threshold), with its own
  p-value (significant below ``wasserstein_alpha`` shared among the numeric features),
  both from the profile's ~100-bin sketch. The feature's level is the worse of
  the two rules.
- Categorical features: chi-square test of homogeneity (scipy) with Cramér's V as the
  effect size; missing values are their own category, and categories the reference never
  saw are counted as new categories.
- Churn rate: observed where the label column is present, else the mean predicted
  probability, against the reference.
- Prediction drift: PSI of the predicted probabilities, when both sides have them.
- Performance: ROC-AUC on the labelled current rows against the champion's test ROC-AUC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

from churn.config import MonitoringSettings
from churn.data.schema import LABEL
from churn.errors import ChurnError
from churn.monitoring.reference import (
    MISSING,
    NumericProfile,
    ReferenceProfile,
    ValueSketch,
    category_counts,
    check_probabilities,
    chunks,
    numeric_values,
    require_columns,
)
from churn.monitoring.report import (
    ChurnRateCheck,
    DriftReport,
    FeatureDrift,
    Level,
    PerformanceCheck,
    PredictionDrift,
    worst,
)
from churn.monitoring.stats import (
    bin_counts,
    bin_moments,
    chi_square,
    cramers_v,
    psi,
    psi_p_value,
    roc_auc,
    roc_auc_standard_error,
    two_sided_p,
    wasserstein_binned,
    wasserstein_p_value,
)


def check_drift(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    probabilities: np.ndarray | Sequence[float] | None = None,
    *,
    settings: MonitoringSettings | None = None,
    reference_roc_auc: float | None = None,
    label: str = LABEL,
) -> DriftReport:
    """Compare current rows with the reference profile.

    Args:
        profile: The champion's reference profile (:func:`fit_reference`).
        current: Recent raw rows, e.g. the latest daily increments; extra columns are
            ignored, the label column is optional.
        probabilities: The model's churn probabilities for ``current``, row-aligned
            (optional; enables prediction drift, predicted churn rate and ROC-AUC).
        settings: Thresholds; the configured defaults when omitted.
        reference_roc_auc: Overrides the profile's test ROC-AUC as the yardstick.
        label: Label column name.

    Returns:
        The report with one result per profiled feature and the overall verdict.

    Raises:
        ChurnError: ``current`` is empty, lacks a profiled column, has a non-numeric
            value in a numeric column, or ``probabilities`` do not match it.

    """
    s = settings or MonitoringSettings()
    require_columns(current, [*profile.numeric, *profile.categorical], "current")
    counts = count_current(profile, current, chunk_rows=s.chunk_rows)
    return check_counts(
        profile, counts, probabilities, _labels(current, label), settings=s, reference_roc_auc=reference_roc_auc
    )


@dataclass
class NumericCounts:
    """One numeric column of current rows counted on a reference's bins.

    Attributes:
        coarse: Rows per PSI bin, then missing values (``bin_counts`` on the profile's edges).
        fine: Rows per sketch bin (empty without a sketch), and ``sums`` their values' sums.
        missing: Missing values.

    """

    coarse: np.ndarray
    fine: np.ndarray
    sums: np.ndarray
    missing: int

    def __add__(self, other: NumericCounts) -> NumericCounts:
        return NumericCounts(
            self.coarse + other.coarse, self.fine + other.fine, self.sums + other.sums, self.missing + other.missing
        )


@dataclass
class CurrentCounts:
    """Everything the drift checks need from current rows: additive, so partitions' counts sum to the whole's.

    Attributes:
        rows: Current rows.
        numeric: Numeric column -> its counts on the reference's bins.
        categorical: Categorical column -> (categories in order of first appearance, their counts
            followed by the count of missing values), as ``category_counts`` gives them.

    """

    rows: int
    numeric: dict[str, NumericCounts]
    categorical: dict[str, tuple[tuple[str, ...], np.ndarray]]

    def __add__(self, other: CurrentCounts) -> CurrentCounts:
        categorical = {}
        for name, (names, counts) in self.categorical.items():
            totals = dict(zip(names, counts[:-1].tolist(), strict=True))
            more_names, more = other.categorical[name]
            for category, count in zip(more_names, more[:-1].tolist(), strict=True):
                totals[category] = totals.get(category, 0) + count
            merged = np.array([*totals.values(), int(counts[-1] + more[-1])], dtype=np.int64)
            categorical[name] = (tuple(totals), merged)
        numeric = {name: c + other.numeric[name] for name, c in self.numeric.items()}
        return CurrentCounts(self.rows + other.rows, numeric, categorical)


def count_current(profile: ReferenceProfile, current: pd.DataFrame, *, chunk_rows: int = 262_144) -> CurrentCounts:
    """Count current rows on the profile's bins and categories, ``chunk_rows`` at a time (bounded memory).

    Raises:
        ChurnError: A numeric column holds a value that is not a number.

    """
    numeric = {name: _numeric_counts(name, ref, current[name], chunk_rows) for name, ref in profile.numeric.items()}
    categorical = {name: category_counts(current[name]) for name in profile.categorical}
    return CurrentCounts(len(current), numeric, categorical)


def check_counts(
    profile: ReferenceProfile,
    counts: CurrentCounts,
    probabilities: np.ndarray | Sequence[float] | None = None,
    labels: np.ndarray | None = None,
    *,
    settings: MonitoringSettings | None = None,
    reference_roc_auc: float | None = None,
) -> DriftReport:
    """The drift report of counted current rows (see :func:`check_drift`, which counts and calls this).

    Args:
        profile: The champion's reference profile.
        counts: The current rows counted by :func:`count_current`, or partitions' counts summed.
        probabilities: The model's probabilities for the current rows (optional).
        labels: Their labels as float, NaN for unlabelled (None: no label column).
        settings: Thresholds; the configured defaults when omitted.
        reference_roc_auc: Overrides the profile's test ROC-AUC as the yardstick.

    """
    s = settings or MonitoringSettings()
    rows = counts.rows
    if rows == 0:
        raise ChurnError("current data is empty: there are no rows to compare")
    p = None if probabilities is None else check_probabilities(probabilities, rows, "current")

    # The distance is the most sensitive test and runs on every numeric feature: its p-values
    # share their level among them (Bonferroni), so all of them together rarely raise a false alarm.
    distance_alpha = s.wasserstein_alpha / max(len(profile.numeric), 1)
    features = [
        _numeric_drift(name, ref, counts.numeric[name], profile.rows, s, distance_alpha)
        for name, ref in profile.numeric.items()
    ] + [
        _categorical_drift(name, ref.categories, np.asarray(ref.proportions), counts.categorical[name], profile.rows, s)
        for name, ref in profile.categorical.items()
    ]
    report = DriftReport(
        reference_rows=profile.rows,
        current_rows=rows,
        features=features,
        thresholds={k: v for k, v in s.model_dump().items() if isinstance(v, float) and k != "push_timeout_seconds"},
    )
    report.churn_rate = _churn_rate(profile, labels, p, s, report.notes)
    if p is not None:
        report.prediction = _prediction_drift(profile, p, s, report.notes)
        auc, auc_se = profile.roc_auc, profile.roc_auc_standard_error
        if reference_roc_auc is not None:
            auc, auc_se = reference_roc_auc, None
        report.performance = _performance(auc, labels, p, s, report.notes, auc_se)
    else:
        report.notes.append("no predicted probabilities given: prediction drift and ROC-AUC not checked")
    return report


def _numeric_counts(name: str, ref: NumericProfile, series: pd.Series, chunk_rows: int) -> NumericCounts:
    edges = np.asarray(ref.edges, dtype=np.float64)
    counts = np.zeros(edges.size + 2, dtype=np.int64)
    sketch = ref.sketch
    fine = np.asarray(sketch.edges if sketch else (), dtype=np.float64)
    fine_counts, fine_sums = np.zeros(fine.size + 1, dtype=np.int64), np.zeros(fine.size + 1)
    # The PSI's decile edges are among the sketch's percentile edges (both are reference
    # quantiles at data values), so the PSI counts follow from the sketch's: one pass, not two.
    derived = sketch is not None and bool(np.isin(edges, fine).all())
    missing = 0
    for part in chunks(len(series), chunk_rows):
        values = numeric_values(series.iloc[part], name)
        if sketch is not None:
            more_counts, more_sums = bin_moments(values, fine)
            fine_counts += more_counts
            fine_sums += more_sums
            missing += values.size - int(more_counts.sum())
        if not derived:
            counts += bin_counts(values, edges)
    if derived:
        # Fine bin j is (fine[j-1], fine[j]]: it lies inside the coarse bin its upper edge falls in.
        coarse = np.searchsorted(edges, np.append(fine, np.inf), side="left")
        counts[:-1] = np.bincount(coarse, weights=fine_counts, minlength=edges.size + 1).astype(np.int64)
        counts[-1] = missing
    return NumericCounts(counts, fine_counts, fine_sums, int(counts[-1]))


def _numeric_drift(
    name: str, ref: NumericProfile, counted: NumericCounts, reference_rows: int, s: MonitoringSettings, alpha: float
) -> FeatureDrift:
    result = _binned_drift(name, ref, counted.coarse, reference_rows, s)
    sketch = ref.sketch
    if sketch is None or counted.fine.sum() == 0:
        return result
    fine = np.asarray(sketch.edges, dtype=np.float64)
    return _with_distance(result, sketch, fine, counted.fine, counted.sums, s, alpha)


def _with_distance(
    result: FeatureDrift,
    sketch: ValueSketch,
    edges: np.ndarray,
    counts: np.ndarray,
    sums: np.ndarray,
    s: MonitoringSettings,
    alpha: float,
) -> FeatureDrift:
    """Add the scale-aware rule to a PSI result: Wasserstein distance in reference std, and its p-value."""
    present = int(counts.sum())
    reference, reference_means = np.asarray(sketch.proportions), np.asarray(sketch.means)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    distance = wasserstein_binned(edges, reference, reference_means, counts / present, means)
    normalised = distance / max(sketch.std, 1e-3)  # Evidently's floor on the unit
    p_value = wasserstein_p_value(distance, edges, reference, reference_means, sketch.rows, present)
    level = _level(normalised, p_value, s.wasserstein_warn, s.wasserstein_alert, alpha)
    return replace(result, level=worst([result.level, level]), wasserstein=normalised, wasserstein_p_value=p_value)


def _binned_drift(
    name: str, ref: NumericProfile, counts: np.ndarray, reference_rows: int, s: MonitoringSettings
) -> FeatureDrift:
    reference = np.asarray(ref.proportions)
    current = counts / counts.sum()
    value = psi(reference, current, s.psi_epsilon)
    occupied = int(((reference > 0) | (counts > 0)).sum())  # bins with data on either side
    p_value = psi_p_value(value, reference_rows, int(counts.sum()), occupied)
    return FeatureDrift(
        feature=name,
        kind="numeric",
        level=_level(value, p_value, s.psi_warn, s.psi_alert, s.alpha),
        statistic=value,
        p_value=p_value,
        psi=value,
        dof=occupied - 1,
        missing_reference=float(reference[-1]),
        missing_current=float(current[-1]),
        bins=tuple(ref.bin_labels),
        reference=tuple(reference.tolist()),
        current=tuple(current.tolist()),
    )


def _categorical_drift(
    name: str,
    categories: tuple[str, ...],
    reference: np.ndarray,
    counted: tuple[tuple[str, ...], np.ndarray],
    reference_rows: int,
    s: MonitoringSettings,
) -> FeatureDrift:
    seen, seen_counts = counted
    index = {c: i for i, c in enumerate(categories)}
    new = [c for c in seen if c not in index]
    index.update({c: len(categories) + i for i, c in enumerate(new)})
    counts = np.zeros(len(index) + 1, dtype=np.int64)
    np.add.at(counts, np.array([index[c] for c in seen], dtype=np.int64), seen_counts[:-1])
    counts[-1] = seen_counts[-1]
    ref = np.concatenate([reference[:-1], np.zeros(len(new)), reference[-1:]])
    current = counts / counts.sum()
    statistic, p_value, dof = chi_square(np.round(ref * reference_rows), counts)
    v = cramers_v(ref, current)
    return FeatureDrift(
        feature=name,
        kind="categorical",
        level=_level(v, p_value, s.cramers_v_warn, s.cramers_v_alert, s.alpha),
        statistic=v,
        p_value=p_value,
        chi2=statistic,
        cramers_v=v,
        dof=dof,
        missing_reference=float(ref[-1]),
        missing_current=float(current[-1]),
        bins=(*categories, *new, MISSING),
        reference=tuple(ref.tolist()),
        current=tuple(current.tolist()),
    )


def _labels(current: pd.DataFrame, label: str) -> np.ndarray | None:
    """The label column as float (NaN = unlabelled), or None when it is absent or all missing."""
    if label not in current.columns:
        return None
    return known_labels(numeric_values(current[label], label), label)


def known_labels(values: np.ndarray, label: str = LABEL) -> np.ndarray | None:
    """Label values as float (NaN = unlabelled), or None when all are missing.

    Raises:
        ChurnError: A known label is not 0 or 1.

    """
    known = values[~np.isnan(values)]
    if known.size == 0:
        return None
    if not np.isin(known, (0.0, 1.0)).all():
        raise ChurnError(f"label column {label!r} must hold 0 or 1, found e.g. {known[~np.isin(known, (0, 1))][0]!r}")
    return values


def _churn_rate(
    profile: ReferenceProfile,
    labels: np.ndarray | None,
    p: np.ndarray | None,
    s: MonitoringSettings,
    notes: list[str],
) -> ChurnRateCheck | None:
    if labels is not None and profile.churn_rate is not None:
        observed = labels[~np.isnan(labels)]
        ref, cur = profile.churn_rate, float(observed.mean())
        se = math.sqrt(ref * (1 - ref) * (1 / profile.rows + 1 / observed.size))
        return _rate_check("observed", ref, cur, se, s)
    if p is not None:
        expected = profile.prediction_mean if profile.prediction_mean is not None else profile.churn_rate
        if expected is None:
            notes.append("churn rate not checked: the reference has neither labels nor predictions")
            return None
        ref_var = profile.prediction_std**2 if profile.prediction_std is not None else float(p.var())
        se = math.sqrt(ref_var / profile.rows + float(p.var()) / p.size)
        return _rate_check("predicted", expected, float(p.mean()), se, s)
    notes.append("churn rate not checked: no labels and no predicted probabilities in the current data")
    return None


def _rate_check(
    source: Literal["observed", "predicted"], ref: float, cur: float, se: float, s: MonitoringSettings
) -> ChurnRateCheck:
    delta = cur - ref
    p_value = two_sided_p(delta / se) if se > 0 else float(delta == 0)
    level = _level(abs(delta), p_value, s.churn_rate_warn, s.churn_rate_alert, s.alpha)
    return ChurnRateCheck(source, ref, cur, delta, p_value, level)


def _prediction_drift(
    profile: ReferenceProfile, p: np.ndarray, s: MonitoringSettings, notes: list[str]
) -> PredictionDrift | None:
    if profile.prediction is None:
        notes.append("prediction drift not checked: the reference profile has no predicted probabilities")
        return None
    result = _binned_drift(
        "prediction", profile.prediction, bin_counts(p, np.asarray(profile.prediction.edges)), profile.rows, s
    )
    return PredictionDrift(result.statistic, result.p_value, result.level, profile.prediction_mean, float(p.mean()))


def _performance(
    reference_auc: float | None,
    labels: np.ndarray | None,
    p: np.ndarray,
    s: MonitoringSettings,
    notes: list[str],
    reference_se: float | None = None,
) -> PerformanceCheck | None:
    if labels is None:
        notes.append("ROC-AUC not checked: the current data has no labels yet")
        return None
    if reference_auc is None:
        notes.append("ROC-AUC not checked: the champion's test ROC-AUC is unknown")
        return None
    known = ~np.isnan(labels)
    y, score = labels[known].astype(np.int64), p[known]
    positives = int(y.sum())
    negatives = y.size - positives
    if y.size < s.min_labelled_rows or positives == 0 or negatives == 0:
        notes.append(
            f"ROC-AUC not checked: {y.size} labelled rows ({positives} churned), "
            f"need {s.min_labelled_rows} with both classes"
        )
        return None
    auc = roc_auc(y, score)
    drop = reference_auc - auc
    # Both ROC-AUCs are estimates: the drop is tested against their combined standard error.
    se = math.hypot(roc_auc_standard_error(auc, positives, negatives), reference_se or 0.0)
    p_value = 0.5 * math.erfc(drop / se / math.sqrt(2.0)) if se > 0 else float(drop <= 0)
    level = _level(drop, p_value, s.auc_drop_warn, s.auc_drop_alert, s.alpha)
    return PerformanceCheck(reference_auc, auc, drop, p_value, int(y.size), level)


def _level(size: float, p_value: float, warn: float, alert: float, alpha: float) -> Level:
    if p_value >= alpha or size < warn:
        return "ok"
    return "alert" if size >= alert else "warn"
