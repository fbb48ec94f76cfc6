"""MLflow tracking and the model registry: candidates, the challenger, the champion and the gate."""

from churn.registry.mlflow_registry import (
    CHALLENGER,
    CHAMPION,
    GateDecision,
    connect,
    connect_registry,
    describe_model,
    download_model,
    load_churn_model,
    load_reference,
    log_candidate,
    promote_if_better,
    register_challenger,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "GateDecision",
    "connect",
    "connect_registry",
    "describe_model",
    "download_model",
    "load_churn_model",
    "load_reference",
    "log_candidate",
    "promote_if_better",
    "register_challenger",
]
