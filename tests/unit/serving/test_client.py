"""``churn predict``'s readers: the first N records without reading the whole export."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from churn.data import generate_customers
from churn.data.files import write_raw
from churn.errors import ChurnError
from churn.serving.client import read_records_file

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_customers(3_000, "2026-01-05", seed=8).frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl", ".json"])
def test_limit_reads_the_first_records_of_every_kind_of_file(frame: pd.DataFrame, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"customers_20260105{suffix}"
    if suffix == ".csv":
        write_raw([frame], path)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        rows = read_records_file(_csv(frame, tmp_path))
        text = "\n".join(map(json.dumps, rows)) if suffix == ".jsonl" else json.dumps(rows, indent=2)
        path.write_text(text)
    whole = read_records_file(path)
    assert len(whole) == len(frame)
    for limit in (1, 7, 2_999, 5_000):
        assert read_records_file(path, limit) == whole[:limit]


def _csv(frame: pd.DataFrame, folder: Path) -> Path:
    path = folder / "source.csv"
    write_raw([frame], path)
    return path


def test_limit_still_reports_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "customers_20260105.csv"
    bad.write_bytes(b"customer_id,age\n\xff\xfe,3\n")
    with pytest.raises(ChurnError, match="not UTF-8"):
        read_records_file(bad, 5)
    broken = tmp_path / "customers_20260105.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(ChurnError, match="parquet"):
        read_records_file(broken, 5)


def test_limit_reads_one_json_document_spread_over_lines(frame: pd.DataFrame, tmp_path: Path) -> None:
    rows = read_records_file(_csv(frame.head(20), tmp_path))
    wrapped = tmp_path / "instances.json"
    wrapped.write_text(json.dumps({"instances": rows}, indent=2))  # its first lines alone are not JSON
    assert read_records_file(wrapped, 3) == rows[:3]
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'[{"country": "\xe9"}]')
    with pytest.raises(ChurnError, match="not UTF-8"):
        read_records_file(latin, 3)
