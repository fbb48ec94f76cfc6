"""Monitoring: drift and performance checks against the champion's reference profile.

The checks are plain functions over a pandas frame and a small JSON-serialisable
profile; the pipeline step, the CLI command and the metrics push are shells around them.
Heavy dependencies (scipy, Evidently, prometheus_client) are imported only when used.
Import from the defining modules: :mod:`~churn.monitoring.reference` (the profile),
:mod:`~churn.monitoring.checks` (drift), :mod:`~churn.monitoring.report` (the drift report),
:mod:`~churn.monitoring.run` (one monitoring run), :mod:`~churn.monitoring.publish` (the
Pushgateway), :mod:`~churn.monitoring.performance` (the performance step).
"""
