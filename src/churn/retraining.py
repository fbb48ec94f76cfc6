"""When a monitoring run retrains: the decision from its drift and realized-performance verdicts.

Starting the training run is :func:`churn.kfp.retrain.trigger_training`; the new model only
registers as ``@challenger`` and the training pipeline's promotion gate still decides
whether it becomes ``@champion``.
"""

from __future__ import annotations


def retraining_reason(drift_verdict: str, performance_levels: dict[str, str] | None = None) -> str:
    """Why a monitoring run retrains ("" = it does not): a drift alert, a realized-performance alert, or both.

    Only the realized level counts among the performance checks: the estimate (CBPE) follows
    the inputs, which the drift checks already judge, and overdue labels are a data problem
    that a new model would not fix.
    """
    reasons = []
    if drift_verdict == "alert":
        reasons.append("drift alert")
    if (performance_levels or {}).get("realized") == "alert":
        reasons.append("realized performance alert")
    return " and ".join(reasons)
