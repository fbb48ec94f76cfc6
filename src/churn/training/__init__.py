"""Training: the split, the four model families, metrics and the decision threshold."""

from churn.training.models import FAMILIES, ChurnModel, train_family
from churn.training.split import split_frame

__all__ = ["FAMILIES", "ChurnModel", "split_frame", "train_family"]
