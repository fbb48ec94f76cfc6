"""Validate raw customer data and explain every problem in one report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pandera.pandas as pa

from churn.validation.reader import ParsedFile, parse_columns, read_raw_file
from churn.validation.report import DataValidationError, ValidationReport
from churn.validation.schema import raw_schema
from churn.validation.violations import failure_violations

T = TypeVar("T")


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
        report.violations.extend(failure_violations(exc.failure_cases, frame, parsed.unparsed, max_examples))
    if parsed.lines is not None:  # a text file: each example also names its line in the file
        for violation in report.violations:
            for example in violation.examples:
                if "row" in example and 0 <= example["row"] < len(parsed.lines):
                    example["line"] = int(parsed.lines[example["row"]])
    if report.violations:
        raise DataValidationError(report)
    return frame, report
