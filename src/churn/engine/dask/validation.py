"""Validation on Dask: the declared rules per partition, the global ones across partitions.

Each partition is checked by the pandas path's own code (``parse_columns``, the pandera
schema, the grouping of failure cases into violations), with its row numbers shifted to
the row's place in the whole export. Rules that need every row at once are computed
across partitions instead: unique ``customer_id`` (a value count), the null-rate limits
(null counts) and the minimum row count. Partial results are a few counts and at most
``max_examples`` example rows per rule, so the driver's memory does not grow with the data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pandera.pandas as pa

from churn.config import DaskSettings
from churn.data.schema import ID, RAW_COLUMNS
from churn.engine.dask.frames import compute, meta_of, read_raw, typed
from churn.validation.reader import parse_columns
from churn.validation.report import DataValidationError, ValidationReport, Violation
from churn.validation.schema import null_rate_check, raw_schema
from churn.validation.validate import reported
from churn.validation.violations import column_violation, failure_violations

if TYPE_CHECKING:
    import dask.dataframe as dd

_UNIQUE = "field_uniqueness"


def _is_global(rule: str) -> bool:
    """Rules that only all rows together can decide (computed across partitions)."""
    return rule == _UNIQUE or rule.startswith(("max_null_rate", "min_rows"))


@dataclass
class _Partial:
    """What one partition contributes to the report."""

    rows: int
    nulls: dict[str, int]
    violations: list[Violation] = field(default_factory=list)
    #: (column, isin check) -> the smallest distinct values outside the allowed set, as text.
    unknown: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: Rows (global numbers) and values of duplicated customer ids, the first ``max_examples``.
    duplicates: list[tuple[int, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _shift(violation: Violation, offset: int) -> Violation:
    examples = [{**e, "row": e["row"] + offset} if "row" in e else e for e in violation.examples]
    return dataclasses.replace(violation, examples=examples)


def _check_partition(part: pd.DataFrame, offset: int, duplicated: frozenset[str], max_examples: int) -> _Partial:
    parsed = parse_columns(part.reset_index(drop=True), max_examples)
    frame = parsed.frame
    assert frame is not None  # parse_columns always returns the frame it converted
    partial = _Partial(rows=len(frame), nulls={str(c): int(frame[c].isna().sum()) for c in frame.columns})
    found = list(parsed.violations)
    try:
        raw_schema(1).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        found += failure_violations(cases, frame, parsed.unparsed, max_examples)
        isin = cases[cases["check"].astype(str).str.startswith("isin")]
        for (column, check), group in isin.groupby(["column", "check"], sort=False):
            values = sorted({str(v) for v in group["failure_case"]})[:max_examples]
            partial.unknown[(str(column), str(check))] = values
    partial.violations = [_shift(v, offset) for v in found if not _is_global(v.rule)]
    if duplicated and ID in frame.columns:
        ids = frame[ID]
        rows = ids.index[ids.isin(duplicated)][:max_examples]
        partial.duplicates = [(int(i) + offset, ids.iat[int(i)]) for i in rows]
    return partial


def _merge(partials: Sequence[_Partial], max_examples: int) -> list[Violation]:
    """One violation per (rule, column): counts summed, the first examples kept, in first-seen order."""
    merged: dict[tuple[str, str | None], Violation] = {}
    for partial in partials:
        for v in partial.violations:
            key = (v.rule, v.column)
            if key not in merged:
                merged[key] = v
                continue
            old = merged[key]
            examples = (old.examples + v.examples)[:max_examples]
            merged[key] = dataclasses.replace(old, failed_rows=old.failed_rows + v.failed_rows, examples=examples)
    unknown: dict[tuple[str, str], set[str]] = {}
    for partial in partials:
        for key, values in partial.unknown.items():
            unknown.setdefault(key, set()).update(values)
    for (column, check), seen in unknown.items():
        if (check, column) in merged:
            # The message names the smallest unknown values of the whole export, as the pandas path does.
            group = pd.DataFrame({"index": [float("nan")] * len(seen), "failure_case": sorted(seen)})
            message = column_violation(column, check, group, max_examples).message
            merged[(check, column)] = dataclasses.replace(merged[(check, column)], message=message)
    return list(merged.values())


def _global_violations(
    partials: Sequence[_Partial], duplicate_rows: int, min_rows: int, max_examples: int
) -> tuple[list[Violation], dict[str, int]]:
    rows = sum(p.rows for p in partials)
    nulls: dict[str, int] = {}
    for partial in partials:
        for column, count in partial.nulls.items():
            nulls[column] = nulls.get(column, 0) + count
    found: list[Violation] = []
    if duplicate_rows:
        examples = [(row, value) for p in partials for row, value in p.duplicates][:max_examples]
        group = pd.DataFrame({"index": [r for r, _ in examples], "failure_case": [v for _, v in examples]})
        unique = column_violation(ID, _UNIQUE, group, max_examples)
        found.append(dataclasses.replace(unique, failed_rows=duplicate_rows))
    for spec in RAW_COLUMNS:
        if spec.nullable and spec.name in nulls and rows:
            share = nulls[spec.name] / rows
            if share > spec.max_null_rate:
                rule = str(null_rate_check(spec.max_null_rate).name)
                message = f"{share:.1%} of values are missing, more than allowed"
                found.append(Violation(rule, message, spec.name, nulls[spec.name]))
    if rows < min_rows:
        found.append(Violation(str(raw_schema(min_rows).checks[0].name), f"only {rows} data rows", None))
    return found, nulls


def validate_dask(
    raw: dd.DataFrame, *, source: str = "<dask frame>", min_rows: int = 1, max_examples: int = 5
) -> tuple[dd.DataFrame, ValidationReport]:
    """Validate a raw export held as a Dask DataFrame, with the pandas path's rules and verdict.

    Args:
        raw: The export as read (see :func:`churn.engine.dask.frames.read_raw`), one partition per file or part.
        source: Where it came from, for the report.
        min_rows: Fewest data rows a valid export may have.
        max_examples: Example rows listed per violation.

    Returns:
        The typed Dask DataFrame and a report with ``valid == True``.

    Raises:
        DataValidationError: Any rule failed; ``error.report`` lists every violation, with
            row numbers counted from the start of the whole export.

    """
    from dask import delayed

    lengths_task = raw.map_partitions(len)
    counts_task = None
    if ID in raw.columns:
        counts = raw[ID].value_counts()
        counts_task = counts[counts > 1]  # filtered on the workers: only repeated ids reach the driver
    if counts_task is None:
        (lengths,) = compute(lengths_task, what="validation")
        duplicated: frozenset[str] = frozenset()
        duplicate_rows = 0
    else:
        lengths, repeated = compute(lengths_task, counts_task, what="validation")
        duplicated = frozenset(str(v) for v in repeated.index)
        duplicate_rows = int(repeated.sum())
    offsets = [0]
    for n in list(lengths)[:-1]:
        offsets.append(offsets[-1] + int(n))
    tasks = [
        delayed(_check_partition)(part, offset, duplicated, max_examples)
        for part, offset in zip(raw.to_delayed(), offsets, strict=True)
    ]
    partials: list[_Partial] = list(compute(*tasks, what="validation"))
    report = ValidationReport(source=source, columns=[str(c) for c in meta_of(raw).columns])
    report.violations = _merge(partials, max_examples)
    found, nulls = _global_violations(partials, duplicate_rows, min_rows, max_examples)
    report.violations += found
    report.rows = sum(p.rows for p in partials)
    report.null_rates = {c: round(nulls.get(c, 0) / report.rows, 6) if report.rows else 0.0 for c in report.columns}
    if report.violations:
        raise DataValidationError(report)
    return typed(raw), report


def validate_path(
    path: str | Path, *, min_rows: int = 1, max_examples: int = 5, source: str | None = None
) -> tuple[dd.DataFrame, ValidationReport]:
    """Read a partitioned parquet export with Dask and validate it (see :func:`validate_dask`)."""
    return validate_dask(read_raw(path), source=source or str(path), min_rows=min_rows, max_examples=max_examples)


def validate_and_report_dask(
    path: str | Path,
    report_path: str | Path,
    *,
    summary_path: str | Path | None = None,
    min_rows: int = 1,
    max_examples: int = 5,
    settings: DaskSettings | None = None,
    source: str | None = None,
) -> ValidationReport:
    """Validate a partitioned parquet export on a Dask cluster and write the report whatever the outcome.

    The cluster comes from :func:`churn.engine.dask.cluster.dask_client` and is closed before returning.
    ``source`` is what the report names as the data (the user's folder, not a pipeline's copy).

    Raises:
        DataValidationError: After the report is written, when any rule failed.

    """
    from churn.engine.dask.cluster import dask_client

    with dask_client(settings):
        _, report = reported(
            lambda: validate_path(path, min_rows=min_rows, max_examples=max_examples, source=source),
            report_path,
            summary_path,
        )
    return report
