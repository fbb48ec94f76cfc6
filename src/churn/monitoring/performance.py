"""Performance monitoring: whether the model still ranks churners correctly.

Drift checks look at the inputs; this module looks at the predictions the system made (the
prediction log) and, once they arrive, the customers' real outcomes (the delayed labels).
Per **daily cohort** (the UTC day the customers were scored) it reports:

- **realized** performance where labels have arrived: ROC-AUC (with its Hanley-McNeil
  standard error), PR-AUC (average precision), precision and recall of the logged labels
  (the model's stored threshold), lift in the top decile, Brier score and expected
  calibration error (10 equal-width probability bins);
- **estimated** performance for every cohort, labelled or not, by confidence-based
  performance estimation (CBPE, as published by NannyML): the model's probabilities,
  calibrated on labelled data (isotonic regression), give an expected confusion matrix at
  every threshold, hence an expected ROC curve and ROC-AUC, and an expected precision and
  recall at the stored threshold. Its standard error comes from sampling: labels are drawn
  from the calibrated probabilities 200 times and the ROC-AUC of each draw computed.

What CBPE cannot see: it assumes that P(churn | score) stays what it was when the
calibrator was fitted. Under covariate drift (customers change, the rules do not) the
estimate follows the change. Under **concept drift** (the same customers now churn for
other reasons) the scores look exactly as before, so the estimate does not move: only
the realized numbers, weeks later when the labels arrive, show the drop.

Levels: a drop of the realized or the estimated ROC-AUC below the champion's test ROC-AUC
is "warn"/"alert" when it exceeds ``auc_drop_warn``/``auc_drop_alert`` *and* is significant
at ``alpha`` against both standard errors (the same rule as the drift checks). A cohort
whose labels are more than ``label_grace_days`` late is "labels overdue".
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn.config import MonitoringSettings
from churn.errors import ChurnError
from churn.monitoring.report import Level, worst
from churn.monitoring.stats import roc_auc, roc_auc_standard_error

#: Checks of a performance run, as named in the report and the metrics.
PERFORMANCE_CHECKS = ("realized", "estimated", "labels")
#: Fewest labelled rows, with both classes, for realized numbers or a calibrator.
MIN_LABELLED_ROWS = 100
ECE_BINS = 10
CBPE_SAMPLES = 200


@dataclass(frozen=True)
class RealizedPerformance:
    """Performance against the labels that have arrived (``labelled`` rows of the cohort)."""

    labelled: int
    churn_rate: float
    roc_auc: float
    roc_auc_standard_error: float
    pr_auc: float
    precision: float
    recall: float
    lift_top_decile: float
    brier: float
    ece: float
    level: Level = "ok"


@dataclass(frozen=True)
class EstimatedPerformance:
    """CBPE's estimate from calibrated probabilities (no labels needed)."""

    roc_auc: float
    roc_auc_standard_error: float
    precision: float
    recall: float
    churn_rate: float
    level: Level = "ok"


@dataclass(frozen=True)
class CohortPerformance:
    """One day's scored customers and what is known about how well they were scored."""

    cohort: dt.date
    scored: int
    labelled: int
    labels_due: dt.date
    labels_overdue: bool
    model_versions: tuple[str, ...]
    estimated: EstimatedPerformance | None
    realized: RealizedPerformance | None

    @property
    def level(self) -> Level:
        levels: list[Level] = ["alert" if self.labels_overdue else "ok"]
        levels += [part.level for part in (self.estimated, self.realized) if part is not None]
        return worst(levels)


@dataclass
class PerformanceReport:
    """A performance run over the prediction log's cohorts."""

    as_of: dt.date
    reference_roc_auc: float | None
    reference_roc_auc_standard_error: float | None
    threshold: float | None
    label_delay_days: int
    calibration: str
    cohorts: list[CohortPerformance] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def levels(self) -> dict[str, Level]:
        return {
            "realized": worst([c.realized.level for c in self.cohorts if c.realized]),
            "estimated": worst([c.estimated.level for c in self.cohorts if c.estimated]),
            "labels": "alert" if any(c.labels_overdue for c in self.cohorts) else "ok",
        }

    @property
    def verdict(self) -> Level:
        return worst(list(self.levels.values()))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["levels"], out["verdict"], out["lines"] = self.levels, self.verdict, self.lines()
        for cohort, obj in zip(out["cohorts"], self.cohorts, strict=True):
            cohort["level"] = obj.level
        return dict(_jsonable(out))

    def metrics(self) -> dict[str, float]:
        """Key numbers for the KFP Metrics artifact: levels and the newest realized and estimated ROC-AUC."""
        from churn.monitoring.report import LEVELS

        out = {f"{check}_level": float(LEVELS.index(level)) for check, level in self.levels.items()}
        out["cohorts"] = float(len(self.cohorts))
        out["labels_overdue_cohorts"] = float(sum(c.labels_overdue for c in self.cohorts))
        for c in self.cohorts:  # oldest first: the newest wins
            if c.estimated:
                out["latest_estimated_roc_auc"] = c.estimated.roc_auc
            if c.realized:
                out["latest_realized_roc_auc"] = c.realized.roc_auc
        return out

    def lines(self) -> list[str]:
        """One line per cohort: estimated ROC-AUC, and realized where labels have arrived."""
        out = []
        for c in self.cohorts:
            text = f"cohort {c.cohort}  {c.scored:>6} scored  "
            if c.estimated:
                e = c.estimated
                text += f"estimated ROC-AUC {e.roc_auc:.3f} ± {e.roc_auc_standard_error:.3f} ({e.level})  "
            if c.realized:
                r = c.realized
                text += (
                    f"realized {r.roc_auc:.3f} ± {r.roc_auc_standard_error:.3f} ({r.level}; {r.labelled} labels, "
                    f"PR-AUC {r.pr_auc:.3f}, lift@10% {r.lift_top_decile:.2f}, Brier {r.brier:.3f}, ECE {r.ece:.3f})"
                )
            elif c.labels_overdue:
                text += f"labels OVERDUE (due {c.labels_due})"
            else:
                text += f"labels due {c.labels_due}"
            out.append(text.rstrip())
        return out

    def markdown(self) -> str:
        ref = "unknown" if self.reference_roc_auc is None else f"{self.reference_roc_auc:.4f}"
        rows = [
            f"# Performance as of {self.as_of}: {self.verdict}",
            "",
            f"Champion's test ROC-AUC {ref}; labels arrive {self.label_delay_days} days after scoring; "
            f"CBPE calibrated on {self.calibration}.",
            "",
            "| cohort | scored | labelled | estimated ROC-AUC | realized ROC-AUC | PR-AUC | precision | recall "
            "| lift@10% | Brier | ECE | level |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in self.cohorts:
            e, r = c.estimated, c.realized
            est = f"{e.roc_auc:.4f} ± {e.roc_auc_standard_error:.4f}" if e else "–"
            if r:
                real = [f"{r.roc_auc:.4f} ± {r.roc_auc_standard_error:.4f}", f"{r.pr_auc:.4f}", f"{r.precision:.3f}"]
                real += [f"{r.recall:.3f}", f"{r.lift_top_decile:.2f}", f"{r.brier:.4f}", f"{r.ece:.4f}"]
            else:
                real = ["overdue" if c.labels_overdue else f"due {c.labels_due}", *["–"] * 6]
            rows.append(f"| {c.cohort} | {c.scored} | {c.labelled} | {est} | " + " | ".join(real) + f" | {c.level} |")
        rows += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(rows) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- the metrics -------------------------------------------------------------------------------


def realized_metrics(labels: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Realized ROC-AUC (and standard error), PR-AUC, precision, recall, top-decile lift, Brier score, ECE.

    Args:
        labels: The outcomes (0/1); both classes must be present.
        probabilities: The logged churn probabilities.
        predicted: The logged labels (the stored threshold applied when serving).

    """
    from sklearn.metrics import average_precision_score

    y = labels.astype(np.int64)
    p = probabilities.astype(np.float64)
    positives, n = int(y.sum()), y.size
    auc = roc_auc(y, p)
    flagged = predicted == 1
    top = np.argsort(-p, kind="stable")[: max(1, math.ceil(0.1 * n))]
    bins = np.minimum((p * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    counts = np.bincount(bins, minlength=ECE_BINS)
    gap = np.abs(np.bincount(bins, weights=p - y, minlength=ECE_BINS))
    return {
        "churn_rate": positives / n,
        "roc_auc": auc,
        "roc_auc_standard_error": roc_auc_standard_error(auc, positives, n - positives),
        "pr_auc": float(average_precision_score(y, p)),
        "precision": float(y[flagged].mean()) if flagged.any() else 0.0,
        "recall": float(y[flagged].sum() / positives),
        "lift_top_decile": float(y[top].mean() / (positives / n)),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": float(gap[counts > 0].sum() / n),
    }


@dataclass(frozen=True)
class Calibrator:
    """Maps the model's scores to calibrated churn probabilities (isotonic; identity when unfitted)."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def fit(cls, probabilities: np.ndarray, labels: np.ndarray) -> Calibrator:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(probabilities, labels)
        return cls(np.asarray(iso.X_thresholds_, dtype=np.float64), np.asarray(iso.y_thresholds_, dtype=np.float64))

    @classmethod
    def identity(cls) -> Calibrator:
        return cls(np.array([0.0, 1.0]), np.array([0.0, 1.0]))

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        return np.asarray(np.interp(probabilities, self.x, self.y))


def cbpe(
    probabilities: np.ndarray,
    threshold: float,
    calibrator: Calibrator,
    *,
    samples: int = CBPE_SAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Confidence-based performance estimation of ROC-AUC, precision and recall, without labels.

    With calibrated probabilities ``q``, the expected true positives above a score
    threshold ``t`` are ``sum(q[p >= t])`` and the expected false positives
    ``sum(1 - q[p >= t])``; sweeping ``t`` over the scores gives the expected ROC curve,
    whose area is the estimated ROC-AUC. The standard error is the spread of the ROC-AUC
    over label sets drawn from ``q`` (what the realized ROC-AUC of this cohort would scatter
    by if the calibration holds).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    q = np.clip(calibrator(p), 0.0, 1.0)
    order = np.argsort(-p, kind="stable")
    ps, qs = p[order], q[order]
    last_of_tie = np.r_[ps[1:] != ps[:-1], True]  # thresholds only between distinct scores
    tp = np.r_[0.0, np.cumsum(qs)[last_of_tie]]
    fp = np.r_[0.0, np.cumsum(1.0 - qs)[last_of_tie]]
    if tp[-1] <= 0 or fp[-1] <= 0:
        raise ChurnError("CBPE needs calibrated probabilities strictly between 0 and 1 for some rows")
    tpr, fpr = tp / tp[-1], fp / fp[-1]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    above = p >= threshold
    expected_tp, expected_fp, expected_fn = q[above].sum(), (1.0 - q[above]).sum(), q[~above].sum()

    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    ranks = rankdata(p)
    draws = rng.random((samples, p.size)) < q
    n_pos = draws.sum(axis=1)
    usable = (n_pos > 0) & (n_pos < p.size)
    draws, n_pos = draws[usable], n_pos[usable]
    aucs = (draws @ ranks - n_pos * (n_pos + 1) / 2.0) / (n_pos * (p.size - n_pos))
    return {
        "roc_auc": auc,
        "roc_auc_standard_error": float(np.std(aucs, ddof=1)) if aucs.size > 1 else float("nan"),
        "precision": float(expected_tp / (expected_tp + expected_fp)) if above.any() else 0.0,
        "recall": float(expected_tp / (expected_tp + expected_fn)),
        "churn_rate": float(q.mean()),
    }


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


# --- cohorts -------------------------------------------------------------------------------------


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
    """Realized and estimated performance of each daily cohort of the prediction log.

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
        calibrator: Maps scores to calibrated probabilities for CBPE; fitted on the
            labelled rows of the oldest ``reference_cohorts`` cohorts when omitted (identity
            when there are too few).
        calibration: What the given calibrator was fitted on (for the report).
        reference_cohorts: How many of the oldest labelled cohorts the calibrator is fitted on.
        settings: Thresholds (the configured defaults when omitted).

    """
    s = settings or MonitoringSettings()
    frame = join_labels(predictions[predictions["date"] <= as_of], labels)
    report = PerformanceReport(
        as_of, reference_roc_auc, reference_roc_auc_standard_error, threshold, label_delay_days, calibration
    )
    if calibrator is None:
        calibrator, report.calibration = fit_calibrator(frame, reference_cohorts)
    for key, cohort in frame.groupby("date", sort=True):
        day = key if isinstance(key, dt.date) else pd.Timestamp(str(key)).date()
        p = cohort["churn_probability"].to_numpy(dtype=np.float64)
        known = cohort["churned"].notna().to_numpy()
        due = day + dt.timedelta(days=label_delay_days)
        estimated = realized = None
        try:
            e = cbpe(p, threshold, calibrator, seed=day.toordinal()) if len(p) >= 2 else None
        except ChurnError as error:  # every calibrated probability 0 or 1: nothing to estimate from
            report.notes.append(f"cohort {day}: no estimate ({error})")
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
                f"cohort {day}: {int(known.sum())} labels so far, need {MIN_LABELLED_ROWS} with both classes"
            )
        overdue = as_of > due + dt.timedelta(days=label_grace_days) and known.mean() < 0.5
        versions = tuple(sorted(set(cohort["model_version"].astype(str))))
        report.cohorts.append(
            CohortPerformance(day, len(p), int(known.sum()), due, bool(overdue), versions, estimated, realized)
        )
    if not report.cohorts:
        report.notes.append(f"no predictions logged up to {as_of}")
    return report


def fit_calibrator(frame: pd.DataFrame, reference_cohorts: int = 7) -> tuple[Calibrator, str]:
    """An isotonic calibrator on the labelled rows of the oldest ``reference_cohorts`` labelled cohorts.

    The oldest cohorts are the reference period (as in NannyML): the model's behaviour right
    after deployment. Calibrating on the newest labels instead would let a concept drift leak
    into the calibration. Identity when there are fewer labelled rows than the minimum.
    """
    known = frame["churned"].notna()
    days = sorted(set(frame.loc[known, "date"]))[:reference_cohorts]
    rows = known & frame["date"].isin(days)
    y = frame.loc[rows, "churned"].to_numpy()
    if rows.sum() < MIN_LABELLED_ROWS or not 0 < y.sum() < y.size:
        return Calibrator.identity(), "nothing (too few labels yet: the model's probabilities are taken as calibrated)"
    where = f"{int(rows.sum())} labelled predictions of the cohorts {days[0]}..{days[-1]}"
    return Calibrator.fit(frame.loc[rows, "churn_probability"].to_numpy(dtype=np.float64), y), where


def monitor_performance(
    *,
    json_path: str | Path,
    markdown_path: str | Path | None = None,
    tracking_uri: str,
    model_uri: str,
    prediction_log_uri: str,
    labels_uri: str,
    as_of: str = "",
    pushgateway_url: str | None = None,
    timeout: int = 10,
    retries: int = 2,
) -> PerformanceReport:
    """The monitoring pipeline's performance step: join the prediction log with the labels, judge each cohort.

    Loads the model's stored threshold and test ROC-AUC (the reference profile logged with it)
    from MLflow, reads the last ``window_days`` of the prediction log and the labels that
    have arrived by ``as_of`` (today, UTC, when empty), writes the JSON and Markdown reports
    and pushes the metrics to the Pushgateway (its own job, ``churn-performance``).

    Raises:
        ChurnError: The model, the log or the labels cannot be read, or the push failed
            (after the reports were written).

    """
    from churn.config import get_settings
    from churn.data.generator import parse_date
    from churn.data.labels import read_labels
    from churn.monitoring.report import write_report
    from churn.predictions.log import read_prediction_log
    from churn.registry import connect_registry, download_model
    from churn.registry.mlflow_registry import load_model_dir, reference_from_dir

    settings = get_settings()
    p = settings.performance
    day = parse_date(as_of or None)
    connect_registry(tracking_uri, timeout=timeout, retries=retries)
    folder = download_model(model_uri)
    model = load_model_dir(folder)
    profile = reference_from_dir(folder)
    predictions = read_prediction_log(prediction_log_uri, start=day - dt.timedelta(days=p.window_days - 1), end=day)
    labels = read_labels(labels_uri, as_of=day)
    report = evaluate_cohorts(
        predictions,
        labels,
        as_of=day,
        threshold=model.threshold,
        reference_roc_auc=profile.roc_auc,
        reference_roc_auc_standard_error=profile.roc_auc_standard_error,
        label_delay_days=p.label_delay_days,
        label_grace_days=p.label_grace_days,
        reference_cohorts=p.reference_cohorts,
        settings=settings.monitoring,
    )
    written, _ = write_report(report, json_path, markdown_path)
    gateway = pushgateway_url or settings.monitoring.pushgateway_url
    if gateway:
        from churn.monitoring.publish import push_performance

        s = settings.monitoring
        try:
            push_performance(report, gateway, job=p.push_job, timeout=s.push_timeout_seconds)
        except ChurnError as error:
            raise ChurnError(f"{error} (the reports were written: {written})") from error
    return report
