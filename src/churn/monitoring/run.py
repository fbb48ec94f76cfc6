"""One monitoring run: check, write the reports, publish the metrics, with the failure rules.

This is what the monitoring pipeline step and the CLI command call; they only load the
profile and the current rows and pass paths in. The rules:

- Invalid or empty current data: no report, a ``churn_monitoring_failed`` push (when a
  Pushgateway is configured) and the :class:`ChurnError` that says what is wrong.
- A Pushgateway that is down: the reports are written first, then a :class:`ChurnError`
  naming the URL, so the run fails loudly and nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from churn.config import MonitoringSettings
from churn.errors import ChurnError
from churn.monitoring.checks import check_drift
from churn.monitoring.evidently_report import write_evidently_report
from churn.monitoring.publish import push_failure, push_report
from churn.monitoring.reference import ReferenceProfile
from churn.monitoring.report import DriftReport, write_report


@dataclass(frozen=True)
class MonitoringRun:
    """What one run produced.

    Attributes:
        report: The drift report.
        json_path: The JSON report.
        markdown_path: The Markdown summary, if asked for.
        html_path: The Evidently HTML report, if asked for.
        pushed_to: The Pushgateway the metrics went to (None = not pushed).

    """

    report: DriftReport
    json_path: Path
    markdown_path: Path | None = None
    html_path: Path | None = None
    pushed_to: str | None = None


def run_monitoring(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    probabilities: np.ndarray | Sequence[float] | None = None,
    *,
    json_path: str | Path,
    markdown_path: str | Path | None = None,
    html_path: str | Path | None = None,
    reference_frame: pd.DataFrame | None = None,
    reference_probabilities: np.ndarray | Sequence[float] | None = None,
    settings: MonitoringSettings | None = None,
    pushgateway_url: str | None = None,
    check: Callable[[], DriftReport] | None = None,
    source: str = "",
) -> MonitoringRun:
    """Check ``current`` against ``profile``, write the reports and push the metrics.

    Args:
        profile: The champion's reference profile.
        current: Recent raw rows (label column optional).
        probabilities: The model's churn probabilities for ``current`` (optional).
        json_path: Where the JSON report goes.
        markdown_path: Where the Markdown summary goes (optional).
        html_path: Where the Evidently HTML report goes (optional; needs ``reference_frame``).
        reference_frame: The reference rows, for the Evidently report only.
        reference_probabilities: Their predicted probabilities (optional, for the HTML).
        settings: Thresholds and Pushgateway settings; the configured defaults when omitted.
        pushgateway_url: Overrides ``settings.pushgateway_url``; None there too = no push.
        check: Computes the report instead of ``check_drift`` on ``current`` (the Dask engine
            counts a whole partitioned table; ``current`` is then a sample of it for Evidently).
        source: The user's name for ``current`` (its file or URI), kept in the report.

    Returns:
        The report and the paths written.

    Raises:
        ChurnError: Bad input (after pushing the failure metric), or the push failed
            (after the reports were written).

    """
    s = settings or MonitoringSettings()
    gateway = pushgateway_url or s.pushgateway_url
    if html_path is not None and reference_frame is None:
        raise ChurnError("an Evidently HTML report needs the reference rows (reference_frame)")
    try:
        report = check() if check is not None else check_drift(profile, current, probabilities, settings=s)
        report.source = source
    except ChurnError as error:
        if gateway:
            _record_failure(gateway, s, error)
        raise

    written_json, written_md = write_report(report, json_path, markdown_path)
    written_html = None
    if html_path is not None and reference_frame is not None:
        written_html = write_evidently_report(
            reference_frame,
            current,
            html_path,
            reference_probabilities=reference_probabilities,
            current_probabilities=probabilities,
        )
    if gateway:
        try:
            push_report(report, gateway, job=s.push_job, timeout=s.push_timeout_seconds)
        except ChurnError as error:
            raise ChurnError(f"{error} (the reports were written: {written_json})") from error
    return MonitoringRun(report, written_json, written_md, written_html, gateway or None)


def _record_failure(gateway: str, s: MonitoringSettings, error: ChurnError) -> None:
    try:
        push_failure(gateway, job=s.push_job, timeout=s.push_timeout_seconds)
    except ChurnError as push_error:
        error.add_note(str(push_error))
