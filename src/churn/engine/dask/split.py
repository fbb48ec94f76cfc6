"""The hash split (:mod:`churn.training.split`) on Dask: the same cut points, without sorting.

Within each class, the rows with the smallest hashes are the training set, the next ones
validation, the rest test: exactly ``round(share x class rows)`` rows each, so the shares
are met to one row per class, and a customer lands in the same split on every run, on
either engine and however the data is partitioned. On Dask the cut points are found
without sorting: a histogram of the hashes' top bits per class locates the bucket of
each cut, and only the hashes inside those few buckets are collected to pin it exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from churn.engine.dask.frames import compute, meta_of
from churn.training.split import (
    CLASSES,
    NO_CUT,
    SPLITS,
    Cuts,
    assign,
    check_classes,
    cut_sizes,
    require_label,
    split_keys,
)

if TYPE_CHECKING:
    import dask.dataframe as dd

#: Top bits of the hash histogrammed per class (65,536 buckets: 512 KB per class and partition).
BUCKET_BITS = 16


def _bucket(hashes: np.ndarray, bits: int) -> np.ndarray:
    return (hashes >> np.uint64(64 - bits)).astype(np.int64)


def _histogram(part: pd.DataFrame, seed: int, bits: int) -> np.ndarray:
    hashes, classes = split_keys(part, seed)
    return np.stack([np.bincount(_bucket(hashes[classes == c], bits), minlength=1 << bits) for c in CLASSES])


def _in_buckets(part: pd.DataFrame, seed: int, bits: int, wanted: dict[int, list[int]]) -> dict[int, np.ndarray]:
    hashes, classes = split_keys(part, seed)
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

    require_label(list(frame.columns))
    parts = frame.to_delayed()
    histogram = np.sum(compute(*[delayed(_histogram)(p, seed, bucket_bits) for p in parts], what="split"), axis=0)
    counts = {c: int(histogram[i].sum()) for i, c in enumerate(CLASSES)}
    check_classes(counts)
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
                values.append(NO_CUT)
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
