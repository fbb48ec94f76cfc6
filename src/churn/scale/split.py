"""A deterministic, stratified split by a seeded hash of ``customer_id``, on pandas or Dask.

Within each class, the rows with the smallest hashes are the training set, the next ones
validation, the rest test: exactly ``round(share x class rows)`` rows each, so the shares
are met to one row per class, and a customer lands in the same split on every run, on
either engine and however the data is partitioned. On Dask the cut points are found
without sorting: a histogram of the hashes' top bits per class locates the bucket of
each cut, and only the hashes inside those few buckets are collected to pin it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from churn.data.schema import ID, LABEL
from churn.errors import ChurnError
from churn.scale.frames import compute, id_hashes, meta_of

if TYPE_CHECKING:
    import dask.dataframe as dd

SPLITS = ("train", "validation", "test")
CLASSES = (0, 1)
#: Top bits of the hash histogrammed per class (65,536 buckets: 512 KB per class and partition).
BUCKET_BITS = 16
_NO_CUT = 2**64 - 1
#: Per class: hashes below the first cut are train, below the second validation, the rest test.
Cuts = dict[int, tuple[int, int]]


def _keys(part: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's hash and class (-1 for a missing label)."""
    labels = part[LABEL].to_numpy(dtype=np.float64, na_value=np.nan)
    classes = np.where(np.isnan(labels), -1, labels).astype(np.int64)
    return id_hashes(part[ID], seed), classes


def cut_sizes(rows: int, validation_size: float, test_size: float) -> tuple[int, int]:
    """Rows of one class below the first and the second cut (train, train + validation)."""
    return round(rows * (1.0 - validation_size - test_size)), round(rows * (1.0 - test_size))


def _check_classes(counts: dict[int, int]) -> None:
    if min(counts.values()) < 10:
        raise ChurnError(f"cannot split: need at least 10 rows of each class, got {counts}")


def _cut(sorted_hashes: np.ndarray, k: int) -> int:
    """The cut below which exactly ``k`` of these (sorted) hashes lie."""
    return int(sorted_hashes[k]) if k < sorted_hashes.size else _NO_CUT


def assign(part: pd.DataFrame, cuts: Cuts, seed: int) -> np.ndarray:
    """Split number (0 train, 1 validation, 2 test; -1 unlabelled) of each row: the per-partition step."""
    hashes, classes = _keys(part, seed)
    out = np.full(len(part), -1, dtype=np.int8)
    for c, (first, second) in cuts.items():
        mine = classes == c
        out[mine] = np.where(hashes[mine] < first, 0, np.where(hashes[mine] < second, 1, 2))
    return out


def _require_label(columns: Sequence[str]) -> None:
    if LABEL not in columns or ID not in columns:
        raise ChurnError(f"cannot split: columns {ID!r} and {LABEL!r} are required")


def split_cuts(frame: pd.DataFrame, *, seed: int = 42, validation_size: float = 0.15, test_size: float = 0.15) -> Cuts:
    """The cut points of an in-memory frame (the pandas engine)."""
    _require_label(list(frame.columns))
    hashes, classes = _keys(frame, seed)
    counts = {c: int((classes == c).sum()) for c in CLASSES}
    _check_classes(counts)
    cuts: Cuts = {}
    for c in CLASSES:
        mine = np.sort(hashes[classes == c])
        k1, k2 = cut_sizes(mine.size, validation_size, test_size)
        cuts[c] = (_cut(mine, k1), _cut(mine, k2))
    return cuts


def hash_split_frame(
    frame: pd.DataFrame, *, seed: int = 42, validation_size: float = 0.15, test_size: float = 0.15
) -> dict[str, pd.DataFrame]:
    """Split labelled rows of an in-memory frame into train, validation and test (unlabelled rows are left out)."""
    cuts = split_cuts(frame, seed=seed, validation_size=validation_size, test_size=test_size)
    which = assign(frame, cuts, seed)
    return {name: frame[which == i].reset_index(drop=True) for i, name in enumerate(SPLITS)}


def _bucket(hashes: np.ndarray, bits: int) -> np.ndarray:
    return (hashes >> np.uint64(64 - bits)).astype(np.int64)


def _histogram(part: pd.DataFrame, seed: int, bits: int) -> np.ndarray:
    hashes, classes = _keys(part, seed)
    return np.stack([np.bincount(_bucket(hashes[classes == c], bits), minlength=1 << bits) for c in CLASSES])


def _in_buckets(part: pd.DataFrame, seed: int, bits: int, wanted: dict[int, list[int]]) -> dict[int, np.ndarray]:
    hashes, classes = _keys(part, seed)
    out = {}
    for c, buckets in wanted.items():
        mine = hashes[classes == c]
        out[c] = mine[np.isin(_bucket(mine, bits), buckets)]
    return out


def dask_split_cuts(
    frame: dd.DataFrame,
    *,
    seed: int = 42,
    validation_size: float = 0.15,
    test_size: float = 0.15,
    bucket_bits: int = BUCKET_BITS,
) -> Cuts:
    """The same cut points as :func:`split_cuts`, from a Dask DataFrame in two passes over small results."""
    from dask import delayed

    _require_label(list(frame.columns))
    parts = frame.to_delayed()
    histogram = np.sum(compute(*[delayed(_histogram)(p, seed, bucket_bits) for p in parts], what="split"), axis=0)
    counts = {c: int(histogram[i].sum()) for i, c in enumerate(CLASSES)}
    _check_classes(counts)
    targets: dict[int, list[tuple[int, int, int]]] = {}  # class -> (k, bucket, rows below the bucket)
    for i, c in enumerate(CLASSES):
        below = np.concatenate([[0], np.cumsum(histogram[i])])
        for k in cut_sizes(counts[c], validation_size, test_size):
            if k < counts[c]:
                bucket = int(np.searchsorted(below, k, side="right")) - 1
                targets.setdefault(c, []).append((k, bucket, int(below[bucket])))
    wanted = {c: sorted({b for _, b, _ in t}) for c, t in targets.items()}
    found = compute(*[delayed(_in_buckets)(p, seed, bucket_bits, wanted) for p in parts], what="split")
    cuts: Cuts = {}
    for c in CLASSES:
        inside = np.sort(np.concatenate([f[c] for f in found])) if c in wanted else np.empty(0, np.uint64)
        values: list[int] = []
        for k in cut_sizes(counts[c], validation_size, test_size):
            if k >= counts[c]:
                values.append(_NO_CUT)
                continue
            (bucket, start) = next((b, s) for kk, b, s in targets[c] if kk == k)
            in_bucket = inside[_bucket(inside, bucket_bits) == bucket]
            values.append(int(in_bucket[k - start]))
        cuts[c] = (values[0], values[1])
    return cuts


def _select(part: pd.DataFrame, cuts: Cuts, seed: int, split: int) -> pd.DataFrame:
    return pd.DataFrame(part.loc[assign(part, cuts, seed) == split])


def hash_split(
    frame: dd.DataFrame, *, seed: int = 42, validation_size: float = 0.15, test_size: float = 0.15
) -> dict[str, dd.DataFrame]:
    """Split labelled rows of a Dask DataFrame: the same rows in each split as :func:`hash_split_frame`."""
    cuts = dask_split_cuts(frame, seed=seed, validation_size=validation_size, test_size=test_size)
    meta = meta_of(frame)
    return {name: frame.map_partitions(_select, cuts, seed, i, meta=meta) for i, name in enumerate(SPLITS)}
