"""Kubeflow Pipelines v2 components: each a thin shell over one function of :mod:`churn.steps`."""
