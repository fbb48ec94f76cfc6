"""Kubeflow Pipelines: the catalog of pipelines, compiling, local runs, run logs, failure diagnosis, submission.

The only part of churn that imports ``pipelines/`` (through :mod:`churn.kfp.catalog`). Its
modules import the third-party ``kfp`` by absolute name, which this package never shadows.
"""
