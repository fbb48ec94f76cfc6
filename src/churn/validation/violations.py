"""From pandera's failure cases to the report's violations: the rules' messages and examples.

Both engines use it: the pandas engine on the whole file, the Dask engine on each partition
(and on the merged unknown categories and duplicate ids of all of them).
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from churn.validation.report import Violation
from churn.validation.schema import ROW_RULES

_ROW_RULES = {rule.name: rule for rule in ROW_RULES}
_IN_RANGE = re.compile(r"in_range\((.*), (.*)\)")
_NOT_AFTER = re.compile(r"not_after\((.*)\)")


def failure_violations(
    cases: pd.DataFrame, frame: pd.DataFrame, unparsed: dict[str, set[int]], max_examples: int
) -> list[Violation]:
    """Group pandera's failure cases into one violation per (column, rule).

    Args:
        cases: pandera's ``SchemaErrors.failure_cases``.
        frame: The typed rows that were checked (row numbers are its positions).
        unparsed: Per column, the rows whose cells did not parse (reported already by the reader).
        max_examples: Example rows listed per violation.

    """
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
            found.append(column_violation(column, check, group, max_examples))
    return found


def column_violation(column: str | None, check: str, group: pd.DataFrame, max_examples: int) -> Violation:
    """One column's violation of one check: its message, failing rows and first examples.

    Args:
        column: The column (None for a frame-wide check).
        check: The pandera check's name (``isin(...)``, ``in_range(a, b)``, ``not_nullable``...).
        group: Its failure cases (``index`` the row, ``failure_case`` the value).
        max_examples: Example rows listed.

    """
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
