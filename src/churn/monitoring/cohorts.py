"""Judge each daily cohort of the prediction log, per model version: join the labels, measure, estimate and level.

A cohort is the customers one model version scored on one UTC day (the log records each
answer's version): a day on which a new champion took over is two cohorts, so each version
is judged on its own answers, and the retraining decision can look at the champion's alone.

Levels: a drop of the realized or the estimated ROC-AUC below the champion's test ROC-AUC
is "warn"/"alert" when it exceeds ``auc_drop_warn``/``auc_drop_alert`` *and* is significant
at ``alpha`` against both standard errors (the same rule as the drift checks). A cohort
whose labels are more than ``label_grace_days`` late is "labels overdue".
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from churn.config import MonitoringSettings
from churn.errors import ChurnError
from churn.monitoring.cbpe import Calibrator, cbpe, fit_calibrator
from churn.monitoring.perf_report import (
    MIN_LABELLED_ROWS,
    CohortPerformance,
    EstimatedPerformance,
    PerformanceReport,
    RealizedPerformance,
)
from churn.monitoring.realized import realized_metrics
from churn.monitoring.report import Level


def drop_level(
    reference: float | None, reference_se: float | None, value: float, se: float, s: MonitoringSettings
) -> Level:
    """The level of a ROC-AUC below the reference: large (thresholds) and significant (one-sided z at alpha)."""
    if reference is None:
        return "ok"
    drop = reference - value
    combined = math.hypot(se if math.isfinite(se) else 0.0, reference_se or 0.0)
    p_value = 0.5 * math.erfc(drop / combined / math.sqrt(2.0)) if combined > 0 else float(drop <= 0)
    if p_value >= s.alpha or drop < s.auc_drop_warn:
        return "ok"
    return "alert" if drop >= s.auc_drop_alert else "warn"


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The prediction log with a ``churned`` column (NaN until the customer's label arrives).

    A customer scored several times on one day counts once in that cohort (the last score).
    """
    frame = predictions.sort_values("scored_at", kind="stable")
    has_id = frame["customer_id"].notna()
    frame = pd.concat(
        [frame[has_id].drop_duplicates(["date", "customer_id"], keep="last"), frame[~has_id]], ignore_index=True
    )
    unique = labels.drop_duplicates("customer_id", keep="last")
    outcome = unique.set_index("customer_id")["churned"] if len(unique) else pd.Series(dtype=float)
    frame["churned"] = frame["customer_id"].map(outcome).astype(float)
    return frame


def evaluate_cohorts(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    as_of: dt.date,
    threshold: float,
    reference_roc_auc: float | None,
    reference_roc_auc_standard_error: float | None = None,
    label_delay_days: int = 30,
    label_grace_days: int = 3,
    calibrator: Calibrator | None = None,
    calibration: str = "",
    reference_cohorts: int = 7,
    settings: MonitoringSettings | None = None,
) -> PerformanceReport:
    """Realized and estimated performance of each daily cohort of each model version in the prediction log.

    Args:
        predictions: The prediction log (:func:`churn.predictions.log.read_prediction_log`).
        labels: The labels that have arrived (:func:`churn.data.labels.read_labels`).
        as_of: The day of the run: cohorts after it are ignored; labels are due ``label_delay_days``
            after their cohort and overdue ``label_grace_days`` later.
        threshold: The model's stored decision threshold (for estimated precision and recall).
        reference_roc_auc: The champion's test ROC-AUC, the yardstick of both drops.
        reference_roc_auc_standard_error: Its standard error.
        label_delay_days: Expected delay of the labels.
        label_grace_days: Days of lateness tolerated before "labels overdue".
        calibrator: Maps scores to calibrated probabilities for CBPE; when omitted, one per model
            version, fitted on the labelled rows of that version's oldest ``reference_cohorts``
            cohorts (identity when there are too few: a new champion's scores are not another's).
        calibration: What the given calibrator was fitted on (for the report).
        reference_cohorts: How many of the oldest labelled cohorts the calibrator is fitted on.
        settings: Thresholds (the configured defaults when omitted).

    """
    s = settings or MonitoringSettings()
    frame = join_labels(predictions[predictions["date"] <= as_of], labels)
    report = PerformanceReport(
        as_of, reference_roc_auc, reference_roc_auc_standard_error, threshold, label_delay_days, calibration
    )
    frame["model_version"] = frame["model_version"].astype(str)
    calibrators: dict[str, Calibrator] = {}
    for name, scored in frame.groupby("model_version", sort=True):
        if calibrator is None:
            calibrators[str(name)], fitted_on = fit_calibrator(scored, reference_cohorts)
            report.calibration += ("; " if report.calibration else "") + f"version {name}: {fitted_on}"
        else:
            calibrators[str(name)] = calibrator
    report.calibration = report.calibration or "nothing (no predictions)"
    for (key, served), cohort in frame.groupby(["date", "model_version"], sort=True):
        day = key if isinstance(key, dt.date) else pd.Timestamp(str(key)).date()
        version = str(served)
        where = f"cohort {day} (version {version})"
        p = cohort["churn_probability"].to_numpy(dtype=np.float64)
        known = cohort["churned"].notna().to_numpy()
        due = day + dt.timedelta(days=label_delay_days)
        estimated = realized = None
        try:
            e = cbpe(p, threshold, calibrators[version], seed=day.toordinal()) if len(p) >= 2 else None
        except ChurnError as error:  # every calibrated probability 0 or 1: nothing to estimate from
            report.notes.append(f"{where}: no estimate ({error})")
            e = None
        if e is not None:
            level = drop_level(
                reference_roc_auc, reference_roc_auc_standard_error, e["roc_auc"], e["roc_auc_standard_error"], s
            )
            estimated = EstimatedPerformance(**e, level=level)
        y = cohort["churned"].to_numpy()[known]
        if known.sum() >= MIN_LABELLED_ROWS and 0 < y.sum() < y.size:
            r = realized_metrics(y, p[known], cohort["churn_label"].to_numpy()[known])
            level = drop_level(
                reference_roc_auc, reference_roc_auc_standard_error, r["roc_auc"], r["roc_auc_standard_error"], s
            )
            realized = RealizedPerformance(labelled=int(known.sum()), **r, level=level)
        elif known.any():
            report.notes.append(
                f"{where}: {int(known.sum())} labels so far, need {MIN_LABELLED_ROWS} with both classes"
            )
        overdue = as_of > due + dt.timedelta(days=label_grace_days) and known.mean() < 0.5
        report.cohorts.append(
            CohortPerformance(day, len(p), int(known.sum()), due, bool(overdue), version, estimated, realized)
        )
    if not report.cohorts:
        report.notes.append(f"no predictions logged up to {as_of}")
    return report
