"""Feature engineering: derived RFM, engagement and risk features and the fitted preprocessing."""

from churn.features.derive import FEATURE_INPUTS, to_columns
from churn.features.pipeline import FeaturePipeline

__all__ = ["FEATURE_INPUTS", "FeaturePipeline", "to_columns"]
