"""The monitoring stages (``components/monitoring.py``): validate the increment, check it, decide to retrain."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churn.data.increments import is_folder_increment, latest_increment
from churn.engine import engine_for
from churn.errors import ChurnError
from churn.stages.data import validate

# Each task is a fresh interpreter that runs one step: heavy libraries (scikit-learn,
# pandera, MLflow) are imported by the functions that use them, not by every task.
if TYPE_CHECKING:
    from churn.monitoring.reference import ReferenceProfile
    from churn.monitoring.retraining import RetrainingRecord
    from churn.training.models import ChurnModel


def load_current(
    out: str | Path, *, source_uri: str = "", raw_dir: str | Path = "data/raw", engine: str = "pandas"
) -> dict[str, Any]:
    """Copy the increment to check into ``out``: as CSV, or as a folder of parquet parts checked on Dask.

    ``source_uri`` is a file or folder of parts (path or ``s3://``) or a folder or ``s3://``
    prefix ending in ``/`` (its latest increment); empty: the latest increment in ``raw_dir``.
    A folder increment is loaded as a folder whatever the engine (it may not fit in memory);
    on the Dask engine a parquet file is too. A CSV file is one process's work on either engine.
    """
    chosen = engine_for(engine)
    out = Path(out)
    uri = latest_increment(source_uri or raw_dir) if not source_uri or source_uri.endswith("/") else source_uri
    folder = is_folder_increment(uri)
    if folder or not uri.lower().endswith((".parquet", ".pq")):
        # The increment's kind decides: a folder is the Dask engine's dataset, a CSV file the pandas one's.
        chosen = engine_for("dask" if folder else "pandas")
    chosen.load_increment(uri, out)
    fingerprint, size = chosen.fingerprint(out)
    return {"source": uri.rstrip("/") if folder else uri, "fingerprint": fingerprint, "bytes": size}


def validate_current(
    raw: str | Path,
    report: str | Path,
    *,
    summary: str | Path | None = None,
    min_rows: int = 100,
    pushgateway_url: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Validate the increment to monitor; when it is invalid or empty, record a failed monitoring run.

    The failure is pushed (``churn_monitoring_failed 1``) when a Pushgateway is given,
    then the validation error is raised: bad data never passes silently. ``source`` names
    the increment in the report (the file or URI it was loaded from).
    """
    from churn.validation import DataValidationError

    try:
        return validate(raw, report, summary=summary, min_rows=min_rows, source=source)
    except DataValidationError as error:
        if pushgateway_url:
            from churn.config import get_settings
            from churn.monitoring.publish import push_failure

            s = get_settings().monitoring
            try:
                push_failure(pushgateway_url, job=s.push_job, timeout=s.push_timeout_seconds)
            except ChurnError as push_error:
                error.add_note(str(push_error))
        raise ChurnError(f"monitoring failed: the current data is invalid: {error}") from error


def monitor(
    raw: str | Path,
    *,
    json_path: str | Path,
    markdown_path: str | Path | None = None,
    html_path: str | Path | None = None,
    tracking_uri: str,
    model_uri: str,
    pushgateway_url: str | None = None,
    timeout: int = 10,
    retries: int = 2,
    source: str | None = None,
) -> dict[str, Any]:
    """Check a daily increment against the reference of a registered model (the champion).

    Loads the model and its reference profile from MLflow, scores the increment, runs the
    drift and performance checks, writes the JSON, Markdown and Evidently HTML reports
    and pushes the metrics (see :func:`churn.monitoring.run.run_monitoring` for the failure
    rules). ``source`` names the increment in the report (the file or URI it was loaded
    from; ``raw`` when omitted). A folder of parts (the Dask engine's) is counted partition
    by partition on a cluster, and Evidently's report draws from a bounded seeded sample of it.

    Returns:
        The report as a dict (``source``, ``verdict``, ``flagged``, ...).

    """
    from churn.config import get_settings
    from churn.registry.mlflow_registry import connect_registry, download_model
    from churn.registry.model_dir import load_model_dir, reference_from_dir, reference_sample_from_dir

    settings = get_settings().monitoring
    url = pushgateway_url or None
    connect_registry(tracking_uri, timeout=timeout, retries=retries)
    folder = download_model(model_uri)
    model = load_model_dir(folder)
    profile = reference_from_dir(folder)
    sample = reference_sample_from_dir(folder)
    with engine_for(None, raw).monitoring_rows(raw, profile, model, settings) as (current, check):
        return _run_monitoring(
            model, profile, sample, current, check, json_path, markdown_path, html_path, url, source or str(raw)
        )


def _run_monitoring(
    model: ChurnModel,
    profile: ReferenceProfile,
    sample: pd.DataFrame | None,
    current: pd.DataFrame,
    check: Callable[[], Any] | None,
    json_path: str | Path,
    markdown_path: str | Path | None,
    html_path: str | Path | None,
    pushgateway_url: str | None,
    source: str,
) -> dict[str, Any]:
    from churn.config import get_settings
    from churn.monitoring.run import run_monitoring

    run = run_monitoring(
        profile,
        current,
        model.predict_proba(current) if len(current) else None,
        json_path=json_path,
        markdown_path=markdown_path,
        html_path=html_path if sample is not None else None,
        reference_frame=sample,
        reference_probabilities=None if sample is None else model.predict_proba(sample),
        settings=get_settings().monitoring,
        pushgateway_url=pushgateway_url,
        check=check,
        source=source,
    )
    return run.report.to_dict()


def monitoring_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The key numbers of a drift report, for the KFP Metrics artifact."""
    from churn.monitoring.report import LEVELS

    features = report.get("features", [])
    metrics = {
        "verdict_level": float(LEVELS.index(report["verdict"])),
        "drifted_features": float(len(report["flagged"])),
        "warned_features": float(len(report["warned"])),
        "current_rows": float(report["current_rows"]),
        "max_feature_psi": max((float(f["psi"]) for f in features if f.get("psi") is not None), default=0.0),
        "max_feature_wasserstein": max(
            (float(f["wasserstein"]) for f in features if f.get("wasserstein") is not None), default=0.0
        ),
    }
    optional = {
        "churn_rate_delta": ("churn_rate", "delta"),
        "prediction_psi": ("prediction", "psi"),
        "recent_roc_auc": ("performance", "roc_auc"),
    }
    for name, (section, key) in optional.items():
        value = (report.get(section) or {}).get(key)
        if value is not None:
            metrics[name] = float(value)
    return metrics


@dataclass(frozen=True)
class RetrainingDecision:
    """Whether a monitoring run retrains, and why (or why not).

    Attributes:
        reason: The alerts that call for a retraining ("" = none).
        skipped: Why none starts although an alert was seen ("" = nothing held it back).
        champion_version: The champion whose cohorts were judged (None: unknown, every cohort counted).
        days_since_last: Monitoring days since the last recorded retraining started (None: none recorded).

    """

    reason: str
    skipped: str = ""
    champion_version: str | None = None
    days_since_last: int | None = None

    @property
    def retrain(self) -> bool:
        return bool(self.reason) and not self.skipped

    def summary(self) -> str:
        """One line for the task's log and output."""
        if self.retrain:
            return f"{self.reason}: retraining"
        if self.reason:
            return f"{self.reason}, but {self.skipped}: no retraining"
        return f"no alert: no retraining ({self.skipped})" if self.skipped else "no alert: no retraining"

    def metrics(self) -> dict[str, float]:
        """The decision's numbers, for the KFP Metrics artifact."""
        out = {"retraining_started": float(self.retrain), "retraining_skipped": float(bool(self.skipped))}
        if self.days_since_last is not None:
            out["days_since_last_retraining"] = float(self.days_since_last)
        return out

    def markdown(self) -> str:
        """The decision as the task's Markdown artifact."""
        title = "started" if self.retrain else "skipped" if self.reason else "not needed"
        version = self.champion_version or "unknown (every cohort counted)"
        last = "none recorded" if self.days_since_last is None else f"{self.days_since_last} day(s) ago"
        rows = [
            f"# Retraining: {title}",
            "",
            f"- alerts that call for it: {self.reason or 'none'}",
            f"- held back by: {self.skipped or 'nothing'}",
            f"- champion judged: version {version}",
            f"- last retraining started: {last}",
        ]
        return "\n".join(rows) + "\n"


def retraining_reason(
    drift_verdict: str,
    performance: dict[str, Any] | None = None,
    *,
    last: RetrainingRecord | None = None,
    running: bool = False,
    today: dt.date | None = None,
    cooldown_days: int = 0,
) -> RetrainingDecision:
    """Whether a monitoring run retrains: a drift alert or a realized alert on the champion's cohorts, unless held back.

    This is THE retraining decision of the monitoring pipeline (``trigger_retraining`` calls it
    through :func:`churn.kfp.retrain.retrain_on_alert`); every rule about when (not) to retrain
    is here. Starting the run is :func:`churn.kfp.retrain.trigger_training`; the new model only
    registers as ``@challenger``, and the training pipeline's promotion gate still decides
    whether it becomes ``@champion``.

    Rules, in order:

    1. **Alerts.** A drift alert (the increment against the champion's reference), or a realized
       performance alert on a cohort the current champion scored (``levels_by_version`` of the
       performance report, at its ``champion_version``). Cohorts an older version scored stay
       in the 90-day window after a new champion took over, but a retraining cannot fix them:
       their alert is shown as the reason nothing started. Without a known champion version
       (a model given by path), every cohort counts. Only the realized level counts: the
       estimate (CBPE) follows the inputs, which the drift checks already judge, and overdue
       labels are a data problem that a new model would not fix.
    2. **Running.** No new retraining while the last one still runs, its rollout included
       (``running``: what :func:`churn.kfp.retrain.retraining_running` says of ``last``).
    3. **Cooldown.** None within ``cooldown_days`` monitoring days of the last one's start
       (``today - last.day < cooldown_days``; a record dated after ``today``, a back-filled
       run, is within it too); 0 switches the cooldown off.

    Args:
        drift_verdict: The drift check's verdict ("ok", "warn", "alert").
        performance: The performance report as a dict (``levels``, ``levels_by_version``,
            ``champion_version``); None when there is none.
        last: The last retraining monitoring started (:mod:`churn.monitoring.retraining`).
        running: Whether ``last`` still runs or rolls out.
        today: The monitoring run's day (``as_of``); today (UTC) when None.
        cooldown_days: ``CHURN_MONITORING__RETRAIN_COOLDOWN_DAYS``.

    """
    report = performance or {}
    champion = report.get("champion_version")
    by_version: dict[str, dict[str, str]] = report.get("levels_by_version") or {}
    if champion is None:
        judged = report.get("levels") or {}
        others = []
    else:
        judged = by_version.get(str(champion), {})
        others = sorted(v for v, levels in by_version.items() if v != str(champion) and levels["realized"] == "alert")
    reasons = []
    if drift_verdict == "alert":
        reasons.append("drift alert")
    if judged.get("realized") == "alert":
        whose = f" on the champion's cohorts (version {champion})" if champion else ""
        reasons.append(f"realized performance alert{whose}")
    reason = " and ".join(reasons)
    day = today or dt.datetime.now(dt.UTC).date()
    since = None if last is None else (day - last.day).days
    if not reason:
        skipped = f"realized alert only on cohorts of version {', '.join(others)}, not the champion's ({champion})"
        return RetrainingDecision("", skipped if others else "", champion, since)
    skipped = ""
    if last is not None and running:
        skipped = f"the retraining started on {last.day} ({last.run or last.mode}) is still running or rolling out"
    elif last is not None and since is not None and cooldown_days > 0 and since < cooldown_days:
        skipped = (
            f"cooldown: the last retraining started on {last.day}, {since} day(s) before {day} "
            f"(CHURN_MONITORING__RETRAIN_COOLDOWN_DAYS={cooldown_days})"
        )
    return RetrainingDecision(reason, skipped, champion, since)
