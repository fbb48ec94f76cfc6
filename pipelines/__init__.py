"""Kubeflow pipelines of churn-mlops; compiled YAML lives in ``pipelines/compiled/``."""
