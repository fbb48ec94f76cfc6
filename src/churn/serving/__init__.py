"""Serving on KServe: the predictor and transformer model classes, their request contract and metrics.

Importing this package imports nothing heavy; each role is started with
``python -m churn.serving.predictor`` or ``python -m churn.serving.transformer``.
"""
