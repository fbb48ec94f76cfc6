"""The seeded, stratified 70/15/15 split of labelled customers."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from churn.data.schema import LABEL
from churn.errors import ChurnError

SPLITS = ("train", "validation", "test")


def split_frame(
    frame: pd.DataFrame, *, seed: int = 42, validation_size: float = 0.15, test_size: float = 0.15
) -> dict[str, pd.DataFrame]:
    """Split labelled rows into train, validation and test, stratified on the label.

    Raises:
        ChurnError: Too few rows, or only one class, to stratify.

    """
    if LABEL not in frame.columns:
        raise ChurnError(f"cannot split: column {LABEL!r} is missing")
    counts = frame[LABEL].value_counts()
    if len(counts) < 2 or counts.min() < 10:
        raise ChurnError(f"cannot split: need at least 10 rows of each class, got {counts.to_dict()}")
    holdout = validation_size + test_size
    train, rest = train_test_split(frame, test_size=holdout, stratify=frame[LABEL], random_state=seed)
    validation, test = train_test_split(
        rest, test_size=test_size / holdout, stratify=rest[LABEL], random_state=seed + 1
    )
    return {
        "train": train.reset_index(drop=True),
        "validation": validation.reset_index(drop=True),
        "test": test.reset_index(drop=True),
    }
