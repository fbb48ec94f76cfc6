"""MLflow tracking and the model registry: candidates, the challenger, the champion and the gate.

:mod:`churn.registry.model_dir` is the layout of a model directory (the files beside the
estimator) and reads it back; :mod:`churn.registry.mlflow_registry` is everything done with MLflow.
"""
