"""The seeded, stratified 70/15/15 split of labelled customers: by a hash of ``customer_id`` (the pipelines').

Within each class, the rows with the smallest hashes are the training set, the next ones
validation, the rest test: exactly ``round(share x class rows)`` rows each, so the shares
are met to one row per class, and a customer lands in the same split on every run, on
either engine and however the data is partitioned (the Dask engine finds the same cut points
without sorting: :mod:`churn.engine.dask.split`).

:func:`split_frame` (scikit-learn's stratified random split) is the other one: the tests' and
benchmarks' fixtures use it on generated frames, and their expected numbers were measured on
its rows; no pipeline stage uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from churn.data.schema import ID, LABEL
from churn.errors import ChurnError


def split_frame(
    frame: pd.DataFrame, *, seed: int = 42, validation_size: float = 0.15, test_size: float = 0.15
) -> dict[str, pd.DataFrame]:
    """Split labelled rows into train, validation and test, stratified on the label (random, seeded).

    For fixtures only (see the module docstring); the pipelines split with :func:`hash_split_frame`.

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


SPLITS = ("train", "validation", "test")
CLASSES = (0, 1)
NO_CUT = 2**64 - 1
#: Per class: hashes below the first cut are train, below the second validation, the rest test.
Cuts = dict[int, tuple[int, int]]


def split_keys(part: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's hash and class (-1 for a missing label)."""
    labels = part[LABEL].to_numpy(dtype=np.float64, na_value=np.nan)
    classes = np.where(np.isnan(labels), -1, labels).astype(np.int64)
    return id_hashes(part[ID], seed), classes


def cut_sizes(rows: int, validation_size: float, test_size: float) -> tuple[int, int]:
    """Rows of one class below the first and the second cut (train, train + validation)."""
    return round(rows * (1.0 - validation_size - test_size)), round(rows * (1.0 - test_size))


def check_classes(counts: dict[int, int]) -> None:
    """Refuse to split fewer than 10 rows of a class."""
    if min(counts.values()) < 10:
        raise ChurnError(f"cannot split: need at least 10 rows of each class, got {counts}")


def cut_below(sorted_hashes: np.ndarray, k: int) -> int:
    """The cut below which exactly ``k`` of these (sorted) hashes lie."""
    return int(sorted_hashes[k]) if k < sorted_hashes.size else NO_CUT


def assign(part: pd.DataFrame, cuts: Cuts, seed: int) -> np.ndarray:
    """Split number (0 train, 1 validation, 2 test; -1 unlabelled) of each row: the per-partition step."""
    hashes, classes = split_keys(part, seed)
    out = np.full(len(part), -1, dtype=np.int8)
    for c, (first, second) in cuts.items():
        mine = classes == c
        out[mine] = np.where(hashes[mine] < first, 0, np.where(hashes[mine] < second, 1, 2))
    return out


def require_label(columns: Sequence[str]) -> None:
    """Refuse to split rows without the id and label columns."""
    if LABEL not in columns or ID not in columns:
        raise ChurnError(f"cannot split: columns {ID!r} and {LABEL!r} are required")


def split_cuts(frame: pd.DataFrame, *, seed: int = 42, validation_size: float = 0.15, test_size: float = 0.15) -> Cuts:
    """The cut points of an in-memory frame (the pandas engine)."""
    require_label(list(frame.columns))
    hashes, classes = split_keys(frame, seed)
    counts = {c: int((classes == c).sum()) for c in CLASSES}
    check_classes(counts)
    cuts: Cuts = {}
    for c in CLASSES:
        mine = np.sort(hashes[classes == c])
        k1, k2 = cut_sizes(mine.size, validation_size, test_size)
        cuts[c] = (cut_below(mine, k1), cut_below(mine, k2))
    return cuts


def hash_split_frame(
    frame: pd.DataFrame, *, seed: int = 42, validation_size: float = 0.15, test_size: float = 0.15
) -> dict[str, pd.DataFrame]:
    """Split labelled rows of an in-memory frame into train, validation and test (unlabelled rows are left out)."""
    cuts = split_cuts(frame, seed=seed, validation_size=validation_size, test_size=test_size)
    which = assign(frame, cuts, seed)
    return {name: frame[which == i].reset_index(drop=True) for i, name in enumerate(SPLITS)}


def id_hashes(ids: pd.Series, seed: int) -> np.ndarray:
    """A seeded 64-bit hash of each id: a row's own random number, the same on every run and partitioning."""
    key = f"{seed:016d}"[-16:]
    return np.asarray(pd.util.hash_pandas_object(ids.astype(str), index=False, hash_key=key).to_numpy(), np.uint64)
