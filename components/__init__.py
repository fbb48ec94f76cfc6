"""Kubeflow Pipelines v2 components: each a thin shell over one function of a module of :mod:`churn.stages`."""
