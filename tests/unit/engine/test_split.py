"""The hash split: stratified to one row per class, the same rows on every run, engine and partitioning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from distributed import Client

from churn.data.schema import ID, LABEL
from churn.engine.dask.frames import read_raw, typed
from churn.engine.dask.split import dask_split_cuts, hash_split
from churn.errors import ChurnError
from churn.training.split import SPLITS, hash_split_frame, split_cuts

Writer = Callable[[pd.DataFrame, Path, int], Path]


def test_shares_per_class_are_met_within_half_a_point(raw: pd.DataFrame) -> None:
    splits = hash_split_frame(raw, seed=5)
    assert sum(len(s) for s in splits.values()) == len(raw)
    assert set().union(*(set(s[ID]) for s in splits.values())) == set(raw[ID])
    for c in (0, 1):
        total = int((raw[LABEL] == c).sum())
        for name, share in zip(SPLITS, (0.70, 0.15, 0.15), strict=True):
            got = int((splits[name][LABEL] == c).sum()) / total
            assert abs(got - share) <= 0.005, (c, name, got)


def test_the_same_customers_land_in_the_same_split(raw: pd.DataFrame) -> None:
    first = hash_split_frame(raw, seed=5)
    shuffled = hash_split_frame(raw.sample(frac=1.0, random_state=1), seed=5)
    for name in SPLITS:
        assert set(first[name][ID]) == set(shuffled[name][ID])
    other = hash_split_frame(raw, seed=6)
    assert set(other["test"][ID]) != set(first["test"][ID])


def test_dask_split_equals_the_pandas_split(
    client: Client, raw: pd.DataFrame, write_partitions: Writer, tmp_path: Path
) -> None:
    ddf = typed(read_raw(write_partitions(raw, tmp_path / "c", 4)))
    cuts = split_cuts(raw, seed=5)
    assert dask_split_cuts(ddf, seed=5) == cuts
    # Coarse buckets (8 of them, hundreds of rows each): the cut is still pinned to the row.
    assert dask_split_cuts(ddf, seed=5, bucket_bits=3) == cuts
    expected = hash_split_frame(raw, seed=5)
    for name, part in hash_split(ddf, seed=5).items():
        got = part.compute().reset_index(drop=True)
        assert list(got[ID]) == list(expected[name][ID]), name


def test_too_few_rows_of_a_class_is_a_clear_error(raw: pd.DataFrame) -> None:
    few = pd.concat([raw[raw[LABEL] == 0], raw[raw[LABEL] == 1].head(9)])
    with pytest.raises(ChurnError, match="at least 10 rows of each class"):
        hash_split_frame(few)
    with pytest.raises(ChurnError, match="'churned' are required"):
        hash_split_frame(raw.drop(columns=[LABEL]))
