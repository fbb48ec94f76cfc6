"""Validate raw customer data and explain every problem in one report."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pandera.pandas as pa

from churn.validation.reader import ParsedFile, parse_columns, read_raw_file
from churn.validation.report import DataValidationError, ValidationReport, Violation
from churn.validation.schema import ROW_RULES, raw_schema

_ROW_RULES = {rule.name: rule for rule in ROW_RULES}
_IN_RANGE = re.compile(r"in_range\((.*), (.*)\)")
T = TypeVar("T")
_NOT_AFTER = re.compile(r"not_after\((.*)\)")


def validate_file(
    path: str | Path, *, min_rows: int = 1, max_examples: int = 5, source: str | None = None
) -> tuple[pd.DataFrame, ValidationReport]:
    """Read and validate a raw customer file.

    Args:
        path: CSV or parquet file.
        min_rows: Fewest data rows a valid file may have.
        max_examples: Example rows listed per violation.
        source: What the report names as the data (default ``path``): the user's file or
            URI when ``path`` is a pipeline's internal copy of it.

    Returns:
        The typed frame and a report with ``valid == True``.

    Raises:
        DataValidationError: Any rule failed; ``error.report`` lists every violation.

    """
    return _validate(read_raw_file(path, max_examples), source or str(path), min_rows, max_examples)


def validate_and_report(
    path: str | Path,
    report_path: str | Path,
    *,
    summary_path: str | Path | None = None,
    min_rows: int = 1,
    max_examples: int = 5,
    source: str | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Like :func:`validate_file`, and write the JSON report (and a Markdown summary) whatever the outcome.

    Raises:
        DataValidationError: After the report is written, when any rule failed.

    """
    return reported(
        lambda: validate_file(path, min_rows=min_rows, max_examples=max_examples, source=source),
        report_path,
        summary_path,
    )


def reported(
    run: Callable[[], tuple[T, ValidationReport]], report_path: str | Path, summary_path: str | Path | None = None
) -> tuple[T, ValidationReport]:
    """Run a validation and write its JSON report (and Markdown summary) whatever the outcome; any engine.

    Raises:
        DataValidationError: After the report is written, when any rule failed.

    """
    try:
        result = run()
    except DataValidationError as exc:
        _write_report(exc.report, report_path, summary_path)
        raise
    _write_report(result[1], report_path, summary_path)
    return result


def _write_report(report: ValidationReport, report_path: str | Path, summary_path: str | Path | None) -> None:
    from churn.storage import atomic_path, write_json

    write_json(report.to_dict(), report_path)
    if summary_path is not None:
        with atomic_path(summary_path) as tmp:
            tmp.write_text(f"# Data validation\n\n```text\n{report.summary()}\n```\n", encoding="utf-8")


def validate_frame(
    frame: pd.DataFrame, *, source: str = "<frame>", min_rows: int = 1, max_examples: int = 5
) -> tuple[pd.DataFrame, ValidationReport]:
    """Validate an in-memory raw frame (values are parsed to their declared types first)."""
    return _validate(parse_columns(frame.reset_index(drop=True), max_examples), source, min_rows, max_examples)


def _validate(
    parsed: ParsedFile, source: str, min_rows: int, max_examples: int
) -> tuple[pd.DataFrame, ValidationReport]:
    report = ValidationReport(source=source, warnings=parsed.warnings, violations=list(parsed.violations))
    frame = parsed.frame
    if frame is None:
        raise DataValidationError(report)
    report.rows = len(frame)
    report.columns = [str(c) for c in frame.columns]
    report.null_rates = {str(c): round(float(frame[c].isna().mean()), 6) if len(frame) else 0.0 for c in frame.columns}
    try:
        raw_schema(min_rows).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        report.violations.extend(_violations(exc.failure_cases, frame, parsed.unparsed, max_examples))
    if parsed.lines is not None:  # a text file: each example also names its line in the file
        for violation in report.violations:
            for example in violation.examples:
                if "row" in example and 0 <= example["row"] < len(parsed.lines):
                    example["line"] = int(parsed.lines[example["row"]])
    if report.violations:
        raise DataValidationError(report)
    return frame, report


def _violations(
    cases: pd.DataFrame, frame: pd.DataFrame, unparsed: dict[str, set[int]], max_examples: int
) -> list[Violation]:
    """Group pandera's failure cases into one violation per (column, rule)."""
    found: list[Violation] = []
    for check, rule in _ROW_RULES.items():
        # pandera lists a failing row once per column; count each row once.
        rows = sorted({int(i) for i in cases.loc[cases["check"] == check, "index"].dropna()})
        if rows:
            examples = [{"row": i, "value": _row_values(frame, i, rule.columns)} for i in rows[:max_examples]]
            found.append(Violation(check, rule.message, ", ".join(rule.columns), len(rows), examples))
    cases = cases[~cases["check"].isin(list(_ROW_RULES))]
    for key, group in cases.groupby(["column", "check"], dropna=False, sort=False):
        raw_column, raw_check = key
        column = None if raw_column is None or raw_column != raw_column else str(raw_column)
        check = str(raw_check)
        if check == "not_nullable" and column in unparsed:
            group = group[~group["index"].isin(unparsed[column])]  # reported as "not a number" already
            if group.empty:
                continue
        if check == "column_in_dataframe":
            for name in group["failure_case"]:
                found.append(Violation("missing_column", "required column is missing", str(name)))
        elif check == "column_in_schema":
            for name in group["failure_case"]:
                found.append(Violation("unexpected_column", "column is not part of the schema", str(name)))
        elif check.startswith("dtype("):
            continue  # cells that did not parse are already reported by the reader
        elif check.startswith("max_null_rate"):
            nulls = int(frame[column].isna().sum())
            share = nulls / max(len(frame), 1)
            found.append(Violation(check, f"{share:.1%} of values are missing, more than allowed", column, nulls))
        elif check.startswith("min_rows"):
            found.append(Violation(check, f"only {len(frame)} data row{'' if len(frame) == 1 else 's'}", None))
        else:
            found.append(_column_violation(column, check, group, max_examples))
    return found


def _column_violation(column: str | None, check: str, group: pd.DataFrame, max_examples: int) -> Violation:
    messages = {
        "not_nullable": "missing values are not allowed",
        "field_uniqueness": "values must be unique",
    }
    message = messages.get(check)
    if message is None and check.startswith("isin"):
        unknown = sorted({str(v) for v in group["failure_case"]})[:max_examples]
        message = f"values outside the allowed categories: {', '.join(unknown)}"
    if message is None and (match := _IN_RANGE.fullmatch(check)):
        message = f"values outside [{match.group(1)}, {match.group(2)}]"
    if message is None and (match := _NOT_AFTER.fullmatch(check)):
        message = f"dates after {match.group(1)}: a snapshot cannot lie in the future"
    rows = group.dropna(subset=["index"]).sort_values("index")
    examples = [
        {"row": int(r["index"]), "value": _plain(r["failure_case"])} for _, r in rows.head(max_examples).iterrows()
    ]
    return Violation(check, message or f"rule {check} failed", column, len(rows), examples)


def _row_values(frame: pd.DataFrame, row: int, columns: tuple[str, ...]) -> dict[str, Any]:
    return {c: _plain(frame.at[row, c]) for c in columns}


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if hasattr(value, "item"):
        return value.item()
    return None if pd.isna(value) else value
