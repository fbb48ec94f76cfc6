"""Monitoring: drift and performance checks against the champion's reference profile.

The checks are plain functions over a pandas frame and a small JSON-serialisable
profile; the pipeline step, the CLI command and the metrics push are shells around them.
Heavy dependencies (scipy, Evidently, prometheus_client) are imported only when used.
"""

from churn.monitoring.checks import check_drift
from churn.monitoring.reference import CategoricalProfile, NumericProfile, ReferenceProfile, fit_reference
from churn.monitoring.report import (
    CHECKS,
    LEVELS,
    ChurnRateCheck,
    DriftReport,
    FeatureDrift,
    Level,
    PerformanceCheck,
    PredictionDrift,
    write_report,
)
from churn.monitoring.run import MonitoringRun, run_monitoring

__all__ = [
    "CHECKS",
    "LEVELS",
    "CategoricalProfile",
    "ChurnRateCheck",
    "DriftReport",
    "FeatureDrift",
    "Level",
    "MonitoringRun",
    "NumericProfile",
    "PerformanceCheck",
    "PredictionDrift",
    "ReferenceProfile",
    "check_drift",
    "fit_reference",
    "run_monitoring",
    "write_report",
]
