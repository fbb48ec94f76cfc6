"""Atomic file output: a write either lands whole or leaves the old file (and no temporary file)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from churn.config import Settings
from churn.data import generate_customers
from churn.data.files import FileFormat, write_raw
from churn.data.schema import COLUMNS_BY_NAME, RAW_COLUMN_NAMES, Kind
from churn.jobs.files import generate_file
from churn.storage import atomic_path, write_json, write_parquet
from churn.validation import validate_file

pytestmark = pytest.mark.unit

ROWS = 300
DATE = "2026-01-05"
OLD_BYTES = b"previous version\n"


class BoomError(RuntimeError):
    """Raised on purpose in the middle of a write."""


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    customers: pd.DataFrame = generate_customers(ROWS, DATE, seed=7).frame
    return customers


def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp*"))


def failing_frames(frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """Yield one block, then fail as a generator that breaks mid-stream would."""
    yield frame.iloc[:100]
    raise BoomError("generator failed after the first block")


# --------------------------------------------------------------------------- atomic_path


def test_atomic_path_writes_beside_target_then_renames(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "out.bin"

    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent  # same filesystem, so the rename is atomic
        assert tmp.name.startswith(".out.bin.") and tmp.name.endswith(".tmp.bin")
        tmp.write_bytes(b"payload")
        assert not target.exists()  # nothing visible before the block ends

    assert target.read_bytes() == b"payload"
    assert not tmp.exists()
    assert temp_files(target.parent) == []


def test_atomic_path_replaces_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(OLD_BYTES)

    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")

    assert target.read_bytes() == b"new"
    assert sorted(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("existed", [False, True], ids=["no-old-file", "old-file"])
def test_atomic_path_failure_keeps_old_state(tmp_path: Path, existed: bool) -> None:
    target = tmp_path / "out.bin"
    if existed:
        target.write_bytes(OLD_BYTES)

    with pytest.raises(BoomError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a fi")
        raise BoomError

    assert temp_files(tmp_path) == []
    if existed:
        assert target.read_bytes() == OLD_BYTES
    else:
        assert not target.exists()


# --------------------------------------------------------------------------- write_json / write_parquet


def test_write_json(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "r.json"
    target.parent.mkdir()
    target.write_bytes(OLD_BYTES)
    obj = {"valid": False, "rows": 3, "when": pd.Timestamp("2026-01-05"), "nested": [1.5, None, "é"]}

    assert write_json(obj, target) == target

    text = target.read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert json.loads(text) == {"valid": False, "rows": 3, "when": "2026-01-05 00:00:00", "nested": [1.5, None, "é"]}
    assert list(json.loads(text)) == ["valid", "rows", "when", "nested"]  # key order kept
    assert temp_files(target.parent) == []


def test_write_json_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_bytes(OLD_BYTES)

    with pytest.raises(ValueError, match="Circular"):
        circular: list[object] = []
        circular.append(circular)
        write_json(circular, target)

    assert target.read_bytes() == OLD_BYTES
    assert temp_files(tmp_path) == []


def test_write_parquet_round_trips(tmp_path: Path) -> None:
    table = pd.DataFrame({"customer_id": ["a", "b", "c"], "p": [0.1, 0.5, 0.9]})
    target = tmp_path / "t.parquet"

    assert write_parquet(table, target) == target

    pd.testing.assert_frame_equal(pd.read_parquet(target), table)
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("existed", [False, True], ids=["no-old-file", "old-file"])
def test_write_parquet_failure_leaves_nothing(tmp_path: Path, existed: bool) -> None:
    target = tmp_path / "t.parquet"
    if existed:
        target.write_bytes(OLD_BYTES)
    unwritable = pd.DataFrame({"x": [object(), object()]})  # Arrow cannot store arbitrary objects

    with pytest.raises(Exception, match="object"):
        write_parquet(unwritable, target)

    assert temp_files(tmp_path) == []
    assert (target.read_bytes() == OLD_BYTES) if existed else not target.exists()


# --------------------------------------------------------------------------- write_raw


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_raw_success_leaves_no_temp_file(frame: pd.DataFrame, tmp_path: Path, fmt: FileFormat) -> None:
    target = tmp_path / "raw" / f"customers.{fmt}"

    assert write_raw([frame], target, fmt) == target

    assert target.stat().st_size > 0
    assert temp_files(target.parent) == []


def test_write_raw_streams_blocks_into_one_file(frame: pd.DataFrame, tmp_path: Path) -> None:
    whole = write_raw([frame], tmp_path / "whole.csv", "csv")
    blocks = write_raw(iter([frame.iloc[:100], frame.iloc[100:250], frame.iloc[250:]]), tmp_path / "blocks.csv", "csv")

    assert blocks.read_bytes() == whole.read_bytes()
    assert blocks.read_text().count("\n") == ROWS + 1  # one header, then every row


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("existed", [False, True], ids=["no-old-file", "old-file"])
def test_write_raw_failure_mid_stream(frame: pd.DataFrame, tmp_path: Path, fmt: FileFormat, existed: bool) -> None:
    target = tmp_path / f"customers.{fmt}"
    if existed:
        target.write_bytes(OLD_BYTES)

    with pytest.raises(BoomError, match="after the first block"):
        write_raw(failing_frames(frame), target, fmt)

    assert temp_files(tmp_path) == []
    if existed:
        assert target.read_bytes() == OLD_BYTES
        assert sorted(tmp_path.iterdir()) == [target]
    else:
        assert list(tmp_path.iterdir()) == []


def test_write_raw_rejects_unknown_format(frame: pd.DataFrame, tmp_path: Path) -> None:
    target = tmp_path / "customers.json"

    with pytest.raises(ValueError, match="unknown format 'json'"):
        write_raw([frame], target, "json")  # type: ignore[arg-type]

    assert list(tmp_path.iterdir()) == []


def test_write_raw_missing_column_fails_cleanly(frame: pd.DataFrame, tmp_path: Path) -> None:
    target = tmp_path / "customers.csv"
    target.write_bytes(OLD_BYTES)

    with pytest.raises(KeyError, match="churned"):
        write_raw([frame.drop(columns=["churned"])], target, "csv")

    assert target.read_bytes() == OLD_BYTES
    assert temp_files(tmp_path) == []


def _columns(kinds: set[Kind]) -> list[str]:
    return [name for name in RAW_COLUMN_NAMES if COLUMNS_BY_NAME[name].kind in kinds]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_raw_round_trips_through_validation(frame: pd.DataFrame, tmp_path: Path, fmt: FileFormat) -> None:
    path = write_raw([frame], tmp_path / f"customers.{fmt}", fmt)

    typed, report = validate_file(path, min_rows=ROWS)

    assert report.valid and report.rows == ROWS
    assert list(typed.columns) == list(RAW_COLUMN_NAMES)
    numeric = _columns({Kind.INT, Kind.FLOAT, Kind.LABEL})
    pd.testing.assert_frame_equal(typed[numeric], frame[numeric], check_dtype=False)
    text = _columns({Kind.ID, Kind.CATEGORY})
    expected_text = frame[text].astype(object).where(frame[text].notna(), None)
    assert typed[text].astype(object).where(typed[text].notna(), None).equals(expected_text)
    for name in _columns({Kind.DATE}):
        assert (typed[name].dt.date == frame[name].dt.date).all()


# --------------------------------------------------------------------------- generate_file


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_generate_file_is_reproducible(tmp_path: Path, fmt: FileFormat) -> None:
    first = generate_file(Settings(data_dir=tmp_path / "a"), rows=ROWS, date=DATE, seed=3, fmt=fmt)
    again = generate_file(Settings(data_dir=tmp_path / "b"), rows=ROWS, date=DATE, seed=3, fmt=fmt)
    other = generate_file(Settings(data_dir=tmp_path / "c"), rows=ROWS, date=DATE, seed=4, fmt=fmt)

    assert first.path.read_bytes() == again.path.read_bytes()
    assert first.truth is not None and again.truth is not None and other.truth is not None
    assert first.truth.read_bytes() == again.truth.read_bytes()
    assert first.churn_rate == again.churn_rate
    assert first.path.read_bytes() != other.path.read_bytes()
    assert first.truth.read_bytes() != other.truth.read_bytes()


def test_generate_file_overwrites_in_place(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = generate_file(settings, rows=ROWS, date=DATE, seed=3, fmt="csv")
    before = first.path.read_bytes()

    again = generate_file(settings, rows=ROWS, date=DATE, seed=3, fmt="csv")

    assert again.path == first.path
    assert again.path.read_bytes() == before
    assert temp_files(tmp_path / "raw") == [] and temp_files(tmp_path / "truth") == []


def test_generate_file_layout_and_truth(tmp_path: Path) -> None:
    result = generate_file(Settings(data_dir=tmp_path), rows=ROWS, date=DATE, seed=3, fmt="csv")

    assert result.path == tmp_path / "raw" / "customers_20260105.csv"
    assert result.truth == tmp_path / "truth" / "customers_20260105.truth.parquet"
    assert result.rows == ROWS
    header = result.path.read_text().split("\n", 1)[0]
    assert header.replace('"', "").split(",") == list(RAW_COLUMN_NAMES)
    assert "prob" not in header
    truth = pq.read_table(result.truth).to_pandas()
    assert list(truth.columns) == ["customer_id", "true_churn_probability"]
    raw = pd.read_csv(result.path)
    assert truth["customer_id"].tolist() == raw["customer_id"].tolist()
    assert truth["true_churn_probability"].between(0, 1).all()
    assert result.churn_rate == pytest.approx(raw["churned"].mean())
    # The raw export stays valid; the truth never sits beside it.
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["customers_20260105.csv"]
    validate_file(result.path, min_rows=ROWS)


def test_generate_file_without_truth(tmp_path: Path) -> None:
    result = generate_file(Settings(data_dir=tmp_path), rows=50, date=DATE, seed=3, fmt="parquet", with_truth=False)

    assert result.truth is None
    assert result.path == tmp_path / "raw" / "customers_20260105.parquet"
    assert not (tmp_path / "truth").exists()


# --------------------------------------------------------------------------- write_object, atomic_folder


def test_write_object_leaves_the_old_file_and_no_temporary_file_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from churn.errors import ChurnError
    from churn.storage import local, write_object

    target = tmp_path / "date=1" / "x.bin"
    target.parent.mkdir()
    target.write_bytes(OLD_BYTES)

    def failing_fsync(_: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(local.os, "fsync", failing_fsync)
    with pytest.raises(ChurnError, match=f"cannot write the log to {target}: disk full"):
        write_object(tmp_path, "date=1/x.bin", b"new", what="the log")
    assert target.read_bytes() == OLD_BYTES
    assert temp_files(target.parent) == []


def test_atomic_folder_keeps_the_old_folder_when_the_writer_raises(tmp_path: Path) -> None:
    from churn.storage import atomic_folder

    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "old").write_bytes(OLD_BYTES)
    with pytest.raises(BoomError), atomic_folder(folder) as tmp:
        (tmp / "new").write_bytes(b"half")
        raise BoomError("writer failed")
    assert [p.name for p in tmp_path.iterdir()] == ["parts"] and [p.name for p in folder.iterdir()] == ["old"]
    with atomic_folder(folder) as tmp:
        (tmp / "new").write_bytes(b"whole")
    assert [p.name for p in folder.iterdir()] == ["new"]
