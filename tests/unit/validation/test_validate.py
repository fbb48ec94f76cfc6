"""Raw-file validation: every kind of bad file becomes one DataValidationError listing all problems."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from churn.cli import app
from churn.data import generate_customers
from churn.data.files import FileFormat, write_raw
from churn.data.scenarios import SCENARIOS
from churn.data.schema import RAW_COLUMN_NAMES
from churn.validation import DataValidationError, ValidationReport, Violation, validate_file, validate_frame

pytestmark = pytest.mark.unit

ROWS = 300
MIN_ROWS = 100

Edit = Callable[[pd.DataFrame], pd.DataFrame]


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """A small valid raw frame (read-only: copy before editing)."""
    customers: pd.DataFrame = generate_customers(ROWS, "2026-01-05", seed=7).frame
    return customers


@pytest.fixture(scope="module")
def valid_files(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[FileFormat, Path]:
    folder = tmp_path_factory.mktemp("valid")
    formats: tuple[FileFormat, ...] = ("csv", "parquet")
    files = {fmt: folder / f"customers.{fmt}" for fmt in formats}
    for fmt in formats:
        write_raw([frame], files[fmt], fmt)
    return files


@pytest.fixture(scope="module")
def cells(valid_files: dict[FileFormat, Path]) -> pd.DataFrame:
    """The valid CSV as text cells ('' is a missing value), to break one thing at a time."""
    return pd.read_csv(valid_files["csv"], dtype=str, keep_default_na=False)


def write_cells(cells: pd.DataFrame, edit: Edit, path: Path) -> Path:
    edit(cells.copy()).to_csv(path, index=False)
    return path


def set_cells(column: str, value: str, rows: list[int] | None = None) -> Edit:
    """An edit that writes ``value`` into ``column`` at ``rows`` (all rows when ``None``)."""

    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[df.index if rows is None else rows, column] = value
        return df

    return edit


def duplicate_first_id(df: pd.DataFrame) -> pd.DataFrame:
    df.at[1, "customer_id"] = str(df.at[0, "customer_id"])
    return df


def returns_above_orders(df: pd.DataFrame, row: int = 3) -> pd.DataFrame:
    df.at[row, "total_returns"] = str(int(str(df.at[row, "total_orders"])) + 1)
    return df


def rejected(path: Path, min_rows: int = MIN_ROWS) -> DataValidationError:
    """Validate ``path``; it must fail with DataValidationError (any other exception fails the test)."""
    with pytest.raises(DataValidationError) as info:
        validate_file(path, min_rows=min_rows)
    return info.value


def family(rule: str) -> str:
    """``in_range(0, 1)`` -> ``in_range``."""
    return rule.split("(", 1)[0]


def violation(report: ValidationReport, rule: str, column: str | None = None) -> Violation:
    """The violation of ``rule`` (exact id or its family) on ``column``; fails listing the report."""
    found = [v for v in report.violations if rule in (v.rule, family(v.rule)) and v.column == column]
    assert found, f"no {rule!r} violation on {column!r} in:\n{report.summary()}"
    assert len(found) == 1, f"{rule!r} on {column!r} reported {len(found)} times:\n{report.summary()}"
    return found[0]


def assert_json_ready(report: ValidationReport) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(report.to_dict()))
    assert body["valid"] is report.valid
    assert len(body["violations"]) == len(report.violations)
    return body


# --------------------------------------------------------------------------- valid input


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_valid_file_passes(valid_files: dict[FileFormat, Path], fmt: FileFormat) -> None:
    typed, report = validate_file(valid_files[fmt], min_rows=MIN_ROWS)

    assert report.valid and report.violations == []
    assert report.rows == ROWS == len(typed)
    assert report.columns == list(RAW_COLUMN_NAMES) == list(typed.columns)
    assert report.source == str(valid_files[fmt])
    body = assert_json_ready(report)
    assert body["valid"] is True
    assert body["rows"] == ROWS
    assert body["null_rates"]["customer_id"] == 0.0
    assert 0 < body["null_rates"]["email_open_rate"] <= 0.15


def test_validate_frame_accepts_generated_frame(frame: pd.DataFrame) -> None:
    before = frame.copy()
    typed, report = validate_frame(frame, min_rows=MIN_ROWS)

    assert report.valid
    assert report.rows == ROWS == len(typed)
    assert report.source == "<frame>"
    assert_json_ready(report)
    pd.testing.assert_frame_equal(frame, before)  # the caller's frame is not modified


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("total_spend", -5.0, "in_range"),
        ("total_orders", "abc", "dtype"),
        ("country", "Atlantis", "isin"),
    ],
)
def test_validate_frame_rejects_bad_value(frame: pd.DataFrame, column: str, value: float | str, rule: str) -> None:
    bad = frame.copy()
    bad[column] = bad[column].astype(object)
    bad.loc[3, column] = value

    with pytest.raises(DataValidationError) as info:
        validate_frame(bad, source="batch-7", min_rows=MIN_ROWS)

    found = violation(info.value.report, rule, column)
    assert found.failed_rows == 1
    assert found.examples == [{"row": 3, "value": value}]  # a frame has no lines: no "line"
    assert str(info.value).startswith("batch-7:")


# --------------------------------------------------------------------------- one broken rule per file


@pytest.mark.parametrize(
    ("edit", "rule", "column", "failed_rows"),
    [
        pytest.param(lambda df: df.drop(columns=["age"]), "missing_column", "age", 0, id="missing-column"),
        pytest.param(lambda df: df.assign(coupon_code="X1"), "unexpected_column", "coupon_code", 0, id="extra-column"),
        pytest.param(set_cells("total_spend", "-5.0", [3]), "in_range", "total_spend", 1, id="negative-spend"),
        pytest.param(set_cells("email_open_rate", "1.5", [3]), "in_range", "email_open_rate", 1, id="rate-above-1"),
        pytest.param(set_cells("email_open_rate", ""), "max_null_rate", "email_open_rate", ROWS, id="too-many-nulls"),
        pytest.param(set_cells("country", "", [3]), "not_nullable", "country", 1, id="null-not-allowed"),
        pytest.param(duplicate_first_id, "field_uniqueness", "customer_id", 2, id="duplicate-id"),
        pytest.param(
            returns_above_orders, "returns_within_orders", "total_returns, total_orders", 1, id="returns-gt-orders"
        ),
    ],
)
def test_broken_rule_is_reported(
    cells: pd.DataFrame, tmp_path: Path, edit: Edit, rule: str, column: str, failed_rows: int
) -> None:
    error = rejected(write_cells(cells, edit, tmp_path / "customers.csv"))

    found = violation(error.report, rule, column)
    assert found.failed_rows == failed_rows
    assert_json_ready(error.report)


def test_out_of_range_examples_name_row_and_value(cells: pd.DataFrame, tmp_path: Path) -> None:
    error = rejected(write_cells(cells, set_cells("total_spend", "-5.0", [3]), tmp_path / "c.csv"))

    found = violation(error.report, "in_range", "total_spend")
    assert found.examples == [{"row": 3, "line": 5, "value": -5.0}]
    assert "[0, 10000000]" in found.message


def test_null_in_required_column_is_shown_as_missing(cells: pd.DataFrame, tmp_path: Path) -> None:
    error = rejected(write_cells(cells, set_cells("country", "", [3]), tmp_path / "c.csv"))

    assert violation(error.report, "not_nullable", "country").examples == [{"row": 3, "line": 5, "value": None}]


def test_cross_column_rule_lists_the_row(cells: pd.DataFrame, tmp_path: Path) -> None:
    error = rejected(write_cells(cells, returns_above_orders, tmp_path / "c.csv"))

    found = violation(error.report, "returns_within_orders", "total_returns, total_orders")
    (example,) = found.examples
    assert example["row"] == 3
    assert example["value"]["total_returns"] == example["value"]["total_orders"] + 1


@pytest.mark.parametrize(
    ("column", "text", "reason"),
    [
        ("total_orders", "abc", "not an integer"),
        ("total_orders", "2.5", "not an integer"),
        ("total_spend", "lots", "not a finite number"),
        ("signup_date", "05/01/2024", "YYYY-MM-DD"),
    ],
)
def test_text_where_a_value_belongs_is_a_dtype_violation(
    cells: pd.DataFrame, tmp_path: Path, column: str, text: str, reason: str
) -> None:
    error = rejected(write_cells(cells, set_cells(column, text, [3]), tmp_path / "c.csv"))

    found = violation(error.report, "dtype", column)
    assert found.failed_rows == 1
    assert found.examples == [{"row": 3, "line": 5, "value": text}]
    assert reason in found.message
    # The unparsed cell is not reported a second time as a missing value.
    assert [v.rule for v in error.report.violations] == ["dtype"]


def test_unknown_category_names_the_value(cells: pd.DataFrame, tmp_path: Path) -> None:
    error = rejected(write_cells(cells, set_cells("country", "Atlantis", [3]), tmp_path / "c.csv"))

    found = violation(error.report, "isin", "country")
    assert "Atlantis" in found.message
    assert found.examples == [{"row": 3, "line": 5, "value": "Atlantis"}]
    assert "Atlantis" in str(error)


# --------------------------------------------------------------------------- files that are not valid CSV


def cut_mid_row(data: bytes) -> bytes:
    """Cut the file in the middle of a row near the middle of the file."""
    start = data.rfind(b"\n", 0, len(data) // 2) + 1
    end = data.find(b"\n", start)
    return data[: (start + end) // 2]


def latin1_on_line_4(data: bytes) -> bytes:
    """Put a latin-1 'é' into the customer id of the third data row (line 4 of the file)."""
    lines = data.splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"C', '"Cé'.encode("latin-1"), 1)
    return b"".join(lines)


@pytest.mark.parametrize(
    ("make", "rule", "in_message"),
    [
        pytest.param(lambda csv, pq: b"", "empty_file", "empty", id="empty"),
        pytest.param(lambda csv, pq: b"\n\n", "empty_file", "empty", id="blank-lines"),
        pytest.param(lambda csv, pq: random.Random(7).randbytes(4096), "not_csv", "binary", id="binary"),
        pytest.param(lambda csv, pq: pq, "not_csv", "parquet", id="parquet-named-csv"),
        pytest.param(lambda csv, pq: csv.replace(b",", b";"), "not_csv", "semicolon", id="semicolons"),
        pytest.param(lambda csv, pq: csv.replace(b",", b"\t"), "not_csv", "tab", id="tabs"),
        pytest.param(lambda csv, pq: latin1_on_line_4(csv), "not_utf8", "line 4", id="latin-1"),
        pytest.param(lambda csv, pq: cut_mid_row(csv), "malformed_csv", "line", id="truncated"),
    ],
)
def test_unreadable_file_is_one_file_level_violation(
    valid_files: dict[FileFormat, Path],
    tmp_path: Path,
    make: Callable[[bytes, bytes], bytes],
    rule: str,
    in_message: str,
) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(make(valid_files["csv"].read_bytes(), valid_files["parquet"].read_bytes()))

    error = rejected(path)

    (found,) = error.report.violations
    assert (found.rule, found.column) == (rule, None)
    assert in_message in found.message
    assert "customers.csv" in found.message
    assert error.report.rows == 0
    assert_json_ready(error.report)


def test_truncated_file_says_which_line(valid_files: dict[FileFormat, Path], tmp_path: Path) -> None:
    data = valid_files["csv"].read_bytes()
    cut = cut_mid_row(data)
    path = tmp_path / "customers.csv"
    path.write_bytes(cut)

    (found,) = rejected(path).report.violations

    assert found.rule == "malformed_csv"
    last_line = cut.count(b"\n") + 1
    assert f"line {last_line} " in found.message
    assert "truncated" in found.message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "customers.csv"
    error = rejected(path)

    (found,) = error.report.violations
    assert found.rule == "file_not_found"
    assert str(path) in found.message


def test_folder_instead_of_file(tmp_path: Path) -> None:
    (found,) = rejected(tmp_path).report.violations
    assert found.rule == "file_not_found"


@pytest.mark.parametrize("ending", [b"\n", b""])
def test_header_only_file_is_too_short(valid_files: dict[FileFormat, Path], tmp_path: Path, ending: bytes) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(valid_files["csv"].read_bytes().split(b"\n", 1)[0] + ending)

    error = rejected(path)

    assert [v.rule for v in error.report.violations] == [f"min_rows({MIN_ROWS})"]
    assert "0 data rows" in error.report.violations[0].message
    assert error.report.rows == 0


def test_too_few_rows(valid_files: dict[FileFormat, Path], tmp_path: Path) -> None:
    error = rejected(valid_files["csv"], min_rows=ROWS + 1)

    assert [v.rule for v in error.report.violations] == [f"min_rows({ROWS + 1})"]
    assert error.report.rows == ROWS


def test_json_lines_are_named_as_json(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    frame.head(5).to_json(path, orient="records", lines=True, date_format="iso")

    (found,) = rejected(path, min_rows=1).report.violations

    assert found.rule == "not_csv"
    assert "JSON" in found.message


@pytest.mark.parametrize("indent", [None, 2])
def test_json_array_is_rejected_cleanly(frame: pd.DataFrame, tmp_path: Path, indent: int | None) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(json.dumps(frame.head(5).astype(str).to_dict(orient="records"), indent=indent))

    error = rejected(path, min_rows=1)

    assert [(v.rule, v.column) for v in error.report.violations] == [("not_csv", None)]
    assert "JSON" in error.report.violations[0].message
    assert_json_ready(error.report)


def test_long_bad_row_keeps_its_line_number(valid_files: dict[FileFormat, Path], tmp_path: Path) -> None:
    """Arrow shortens long rows in its error; the line number must survive that."""
    data = valid_files["csv"].read_bytes()
    lines = data.split(b"\n")
    lines[10] = lines[10] + b"," + b"x" * 200  # an extra, long field on data row 10 (line 11)
    path = tmp_path / "customers.csv"
    path.write_bytes(b"\n".join(lines))

    (found,) = rejected(path).report.violations

    assert found.rule == "malformed_csv"
    assert "line 11" in found.message


# --------------------------------------------------------------------------- many problems, one error


def many_problems(df: pd.DataFrame) -> pd.DataFrame:
    df = df.drop(columns=["age"]).assign(coupon_code="X1")
    df.loc[3, "total_orders"] = "abc"
    df.loc[4, "country"] = "Atlantis"
    df.loc[5, "email_open_rate"] = "1.5"
    df.loc[6, "total_spend"] = "-1"
    df = duplicate_first_id(df)
    return returns_above_orders(df, row=7)


def test_all_problems_are_reported_in_one_error(cells: pd.DataFrame, tmp_path: Path) -> None:
    path = write_cells(cells, many_problems, tmp_path / "customers.csv")

    error = rejected(path)

    found = {(family(v.rule), v.column) for v in error.report.violations}
    assert found == {
        ("missing_column", "age"),
        ("unexpected_column", "coupon_code"),
        ("dtype", "total_orders"),
        ("isin", "country"),
        ("in_range", "email_open_rate"),
        ("in_range", "total_spend"),
        ("spend_equals_orders_times_aov", "total_spend, total_orders, avg_order_value"),
        ("field_uniqueness", "customer_id"),
        ("returns_within_orders", "total_returns, total_orders"),
    }
    assert len(error.report.violations) == len(found)
    assert error.report.rows == ROWS


def test_error_message_names_file_and_every_column(cells: pd.DataFrame, tmp_path: Path) -> None:
    path = write_cells(cells, many_problems, tmp_path / "customers.csv")

    error = rejected(path)
    message = str(error)

    assert message.startswith(str(path))
    assert f"{len(error.report.violations)} violation(s)" in message
    for name in ("age", "coupon_code", "total_orders", "country", "email_open_rate", "customer_id"):
        assert f"column {name!r}" in message
    assert "'abc'" in message and "Atlantis" in message
    body = assert_json_ready(error.report)
    assert body["valid"] is False
    assert body["source"] == str(path)


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the CLI from an empty folder with default settings, so nothing lands in the repository."""
    for name in ("CHURN_DATA_DIR", "CHURN_VALIDATION__MIN_ROWS", "CHURN_VALIDATION__MAX_EXAMPLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_rejects_bad_file(cells: pd.DataFrame, cli_dir: Path) -> None:
    bad = write_cells(cells, set_cells("country", "Atlantis", [3]), cli_dir / "customers.csv")
    report_path = cli_dir / "out" / "r.json"

    result = CliRunner().invoke(app, ["data", "validate", str(bad), "--report", str(report_path)])

    assert result.exit_code == 1, result.output
    assert "invalid" in result.output
    assert "column 'country'" in result.output and "Atlantis" in result.output
    report = json.loads(report_path.read_text())
    assert report["valid"] is False
    assert [(family(v["rule"]), v["column"]) for v in report["violations"]] == [("isin", "country")]


def test_cli_accepts_valid_file(valid_files: dict[FileFormat, Path], cli_dir: Path) -> None:
    report_path = cli_dir / "r.json"

    result = CliRunner().invoke(app, ["data", "validate", str(valid_files["csv"]), "--report", str(report_path)])

    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    report = json.loads(report_path.read_text())
    assert report["valid"] is True
    assert report["rows"] == ROWS


def test_cli_writes_default_report_under_data_reports(valid_files: dict[FileFormat, Path], cli_dir: Path) -> None:
    result = CliRunner().invoke(app, ["data", "validate", str(valid_files["parquet"])])

    assert result.exit_code == 0, result.output
    report = json.loads((cli_dir / "data" / "reports" / "customers.validation.json").read_text())
    assert report["valid"] is True


def test_cli_reports_missing_file(cli_dir: Path) -> None:
    result = CliRunner().invoke(app, ["data", "validate", "absent.csv", "--report", "r.json"])

    assert result.exit_code == 1
    assert "absent.csv" in result.output
    assert json.loads((cli_dir / "r.json").read_text())["violations"][0]["rule"] == "file_not_found"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenarios_daily_increment_is_valid(scenario: str) -> None:
    """A drifted day is still a valid export: monitoring, not validation, is what flags it."""
    frame = generate_customers(1_000, "2026-01-07", seed=3, scenario=scenario).frame
    _, report = validate_frame(frame)
    assert report.valid, report.violations
