"""Malformed CSV shapes, each reported once, by what it is and where, wherever it sits in the file.

A CSV export breaks in a handful of ways: a byte-order mark, Windows line ends, a trailing
comma, an empty header field, a header repeated where files were concatenated, a NUL byte,
rows with too few or too many fields, no rows, a snapshot date in the future. Each shape
is one clear violation (or, when harmless, none), never one violation per column.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn.data import generate_customers
from churn.data.files import write_raw
from churn.data.schema import RAW_COLUMN_NAMES
from churn.validation import DataValidationError, ValidationReport, validate_file, validate_frame
from churn.validation.schema import FUTURE_TOLERANCE_DAYS

pytestmark = pytest.mark.unit

ROWS = 1_000  # about 150 KB: past the first 64 KiB, where a NUL byte used to be judged differently
COLUMNS = len(RAW_COLUMN_NAMES)


@pytest.fixture(scope="module")
def csv_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("malformed") / "customers.csv"
    write_raw([generate_customers(ROWS, "2026-01-05", seed=3).frame], path)
    data = path.read_bytes()
    assert len(data) > 2 * 65_536  # past the first 64 KiB
    return data


def _check(data: bytes, folder: Path, name: str = "customers.csv") -> ValidationReport:
    path = folder / name
    path.write_bytes(data)
    try:
        return validate_file(path, min_rows=1)[1]
    except DataValidationError as error:
        return error.report


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _line_of(data: bytes, position: int) -> int:
    return data.count(b"\n", 0, position) + 1


# --------------------------------------------------------------------------- harmless shapes


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(lambda d: b"\xef\xbb\xbf" + d, id="bom"),
        pytest.param(lambda d: d.replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(lambda d: b"\xef\xbb\xbf" + d.replace(b"\n", b"\r\n"), id="bom-crlf"),
        pytest.param(lambda d: b"\n".join([*_lines(d)[:50], b"", *_lines(d)[50:]]), id="blank-line"),
        pytest.param(lambda d: d.rstrip(b"\n"), id="no-final-newline"),
    ],
)
def test_harmless_shapes_are_valid(csv_bytes: bytes, tmp_path: Path, shape: object) -> None:
    report = _check(shape(csv_bytes), tmp_path)  # type: ignore[operator]
    assert report.valid, report.summary()
    assert report.rows == ROWS and report.columns == list(RAW_COLUMN_NAMES)


# --------------------------------------------------------------------------- header shapes


def test_a_trailing_comma_is_an_unnamed_column_named_by_its_position(csv_bytes: bytes, tmp_path: Path) -> None:
    data = b"\n".join(line + b"," if line else line for line in _lines(csv_bytes))
    report = _check(data, tmp_path)
    (found,) = report.violations
    assert found.rule == "unnamed_column" and found.column == f"<unnamed column {COLUMNS + 1}>"
    assert "trailing comma" in found.message
    assert found.describe().startswith(f"column '<unnamed column {COLUMNS + 1}>'")  # not "file"
    assert report.rows == ROWS and "<unnamed column" not in " ".join(report.columns)


def test_a_trailing_comma_on_the_header_only_also_says_the_rows_are_short(csv_bytes: bytes, tmp_path: Path) -> None:
    lines = _lines(csv_bytes)
    report = _check(b"\n".join([lines[0] + b",", *lines[1:]]), tmp_path)
    assert [v.rule for v in report.violations] == ["unnamed_column", "malformed_csv"]
    assert f"line 2 has {COLUMNS} fields, the header has {COLUMNS + 1}" in report.violations[1].message


def test_an_empty_header_field_names_its_position_and_the_missing_column(csv_bytes: bytes, tmp_path: Path) -> None:
    lines = _lines(csv_bytes)
    report = _check(b"\n".join([lines[0].replace(b'"age",', b",", 1), *lines[1:]]), tmp_path)
    found = {(v.rule, v.column) for v in report.violations}
    assert found == {("unnamed_column", "<unnamed column 4>"), ("missing_column", "age")}


@pytest.mark.parametrize("at", [[1], [100], [ROWS], [100, 250]], ids=["first-row", "middle", "last", "twice"])
def test_a_repeated_header_is_one_violation_with_its_lines(csv_bytes: bytes, tmp_path: Path, at: list[int]) -> None:
    lines = _lines(csv_bytes)
    for offset, index in enumerate(at):
        lines.insert(index + offset, lines[0])  # concatenated files: each part brings its header
    report = _check(b"\n".join(lines), tmp_path)
    (found,) = report.violations
    expected = [index + offset + 1 for offset, index in enumerate(at)]
    assert found.rule == "repeated_header" and found.failed_rows == len(at)
    assert f"line {', '.join(map(str, expected))} " in found.message
    assert report.rows == ROWS


def test_a_repeated_header_with_other_quoting_is_still_one_violation(csv_bytes: bytes, tmp_path: Path) -> None:
    lines = _lines(csv_bytes)
    lines.insert(10, lines[0].replace(b'"', b""))  # the other file was written without quotes
    (found,) = _check(b"\n".join(lines), tmp_path).violations
    assert found.rule == "repeated_header" and "line 11 " in found.message


@pytest.mark.parametrize("shape", ["plain", "blank-lines", "multi-line-cell"])
def test_examples_after_a_repeated_header_name_the_files_own_lines(
    csv_bytes: bytes, tmp_path: Path, shape: str
) -> None:
    """Rows after a removed header line (or a blank line, or a cell spanning two lines) keep their line numbers."""
    lines = _lines(csv_bytes)
    age = [c.strip(b'"') for c in lines[0].split(b",")].index(b"age")
    for index in (300, 600):  # lines 301 and 601: a bad age on each
        cells = lines[index].split(b",")
        cells[age] = b"-7"
        lines[index] = b",".join(cells)
    lines.insert(100, lines[0])  # the header again at line 101: the bad rows move to lines 302 and 602
    if shape == "blank-lines":
        lines[50:50] = [b"", b""]  # two more lines before them
    if shape == "multi-line-cell":
        city = lines[20].split(b",")  # a quoted cell holding a line break: one record, two lines
        city[0] = city[0][:-1] + b'\nsecond"' if city[0].endswith(b'"') else b'"' + city[0] + b'\nsecond"'
        lines[20] = b",".join(city)
    report = _check(b"\n".join(lines), tmp_path)
    shift = {"plain": 0, "blank-lines": 2, "multi-line-cell": 1}[shape]
    found = next(v for v in report.violations if v.column == "age")
    assert [e["line"] for e in found.examples] == [302 + shift, 602 + shift]
    assert f"line {302 + shift}: -7" in found.describe()
    (header,) = [v for v in report.violations if v.rule == "repeated_header"]
    assert f"line {101 + shift} " in header.message


# --------------------------------------------------------------------------- NUL bytes


@pytest.mark.parametrize("where", [0, 100, 70_000, -2], ids=["first-byte", "early", "past-64KiB", "last-row"])
def test_a_nul_byte_is_the_same_violation_wherever_it_is(csv_bytes: bytes, tmp_path: Path, where: int) -> None:
    position = where if where >= 0 else len(csv_bytes) + where
    data = csv_bytes[:position] + b"\x00" + csv_bytes[position:]
    (found,) = _check(data, tmp_path).violations
    assert (found.rule, found.column) == ("not_csv", None)
    assert f"NUL bytes (the first on line {_line_of(data, position)})" in found.message


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(0.0, 1.0))
def test_any_nul_byte_anywhere_names_its_line(csv_bytes: bytes, tmp_path: Path, share: float) -> None:
    position = int(share * (len(csv_bytes) - 1))
    data = csv_bytes[:position] + b"\x00" + csv_bytes[position:]
    (found,) = _check(data, tmp_path).violations
    assert found.rule == "not_csv" and f"line {_line_of(data, position)})" in found.message


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, ROWS))
def test_a_header_repeated_on_any_line_is_found_there(csv_bytes: bytes, tmp_path: Path, index: int) -> None:
    lines = _lines(csv_bytes)
    lines.insert(index, lines[0])
    (found,) = _check(b"\n".join(lines), tmp_path).violations
    assert found.rule == "repeated_header" and f"line {index + 1} " in found.message


# --------------------------------------------------------------------------- rows and emptiness


@pytest.mark.parametrize(
    ("cut", "fields"),
    [(lambda line: line.rsplit(b",", 2)[0], COLUMNS - 2), (lambda line: line + b",1,2", COLUMNS + 2)],
    ids=["short-row", "long-row"],
)
def test_a_ragged_row_is_named_by_its_line(csv_bytes: bytes, tmp_path: Path, cut: object, fields: int) -> None:
    lines = _lines(csv_bytes)
    lines[120] = cut(lines[120])  # type: ignore[operator]
    (found,) = _check(b"\n".join(lines), tmp_path).violations
    assert found.rule == "malformed_csv" and f"line 121 has {fields} fields, the header has {COLUMNS}" in found.message


@pytest.mark.parametrize(
    ("data", "rule"),
    [(b"", "empty_file"), (b" \n\r\n", "empty_file"), (None, "min_rows(1)")],
    ids=["empty", "whitespace", "header-only"],
)
def test_files_without_rows(csv_bytes: bytes, tmp_path: Path, data: bytes | None, rule: str) -> None:
    report = _check(_lines(csv_bytes)[0] + b"\n" if data is None else data, tmp_path)
    assert [v.rule for v in report.violations] == [rule] and report.rows == 0


# --------------------------------------------------------------------------- dates


def test_a_snapshot_in_the_future_is_refused_clearly(tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    tolerated = today + dt.timedelta(days=FUTURE_TOLERANCE_DAYS)  # an export made just after midnight, east of UTC
    assert validate_frame(generate_customers(200, tolerated, seed=1).frame)[1].valid
    future = today + dt.timedelta(days=FUTURE_TOLERANCE_DAYS + 30)
    path = tmp_path / "future.csv"
    write_raw([generate_customers(200, future, seed=1).frame], path)
    report = _check(path.read_bytes(), tmp_path)
    (found,) = report.violations
    assert found.column == "snapshot_date" and found.rule == f"not_after({tolerated.isoformat()})"
    assert found.failed_rows == 200 and "cannot lie in the future" in found.message
    assert [e["row"] for e in found.examples] == [0, 1, 2, 3, 4]  # in row order
    assert found.examples[0]["value"] == future.isoformat()
