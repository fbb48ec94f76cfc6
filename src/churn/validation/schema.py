"""The declared rules of the raw export, as a pandera schema built from :mod:`churn.data.schema`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

from churn.data.schema import RAW_COLUMNS, Kind, RawColumn

_DTYPES = {
    Kind.ID: str,
    Kind.DATE: "datetime64[ns]",
    Kind.INT: "Int64",
    Kind.FLOAT: "float64",
    Kind.CATEGORY: str,
    Kind.LABEL: "Int64",
}


@dataclass(frozen=True)
class RowRule:
    """A rule across columns, true for every valid row."""

    name: str
    message: str
    columns: tuple[str, ...]
    holds: Callable[[pd.DataFrame], pd.Series]


#: Rules that relate columns to each other; a row with a missing input passes.
ROW_RULES: tuple[RowRule, ...] = (
    RowRule(
        "returns_within_orders",
        "total_returns is larger than total_orders",
        ("total_returns", "total_orders"),
        lambda df: df["total_returns"] <= df["total_orders"],
    ),
    RowRule(
        "signup_before_snapshot",
        "signup_date is after snapshot_date",
        ("signup_date", "snapshot_date"),
        lambda df: df["signup_date"] <= df["snapshot_date"],
    ),
    RowRule(
        "last_purchase_within_tenure",
        "days_since_last_purchase reaches back before signup_date",
        ("days_since_last_purchase", "signup_date", "snapshot_date"),
        lambda df: df["days_since_last_purchase"] <= (df["snapshot_date"] - df["signup_date"]).dt.days,
    ),
    RowRule(
        "spend_equals_orders_times_aov",
        "total_spend differs from total_orders x avg_order_value by more than rounding",
        ("total_spend", "total_orders", "avg_order_value"),
        lambda df: (
            (df["total_orders"] * df["avg_order_value"] - df["total_spend"]).abs()
            <= 0.01 * df["total_orders"] + 0.005 * df["total_spend"]
        ),
    ),
)


def _row_check(rule: RowRule) -> pa.Check:
    def check(df: pd.DataFrame) -> pd.Series | bool:
        if not set(rule.columns) <= set(df.columns):
            return True  # the missing column is reported on its own
        holds = rule.holds(df)
        return holds.fillna(True).astype(bool) | df[list(rule.columns)].isna().any(axis=1)

    return pa.Check(check, name=rule.name)


def null_rate_check(max_rate: float) -> pa.Check:
    return pa.Check(
        lambda s: len(s) == 0 or bool(s.isna().mean() <= max_rate),
        name=f"max_null_rate({max_rate})",
        ignore_na=False,
    )


def _column(spec: RawColumn) -> pa.Column:
    checks: list[pa.Check] = []
    if spec.kind in (Kind.INT, Kind.FLOAT):
        checks.append(pa.Check.in_range(spec.min, spec.max))
    elif spec.kind is Kind.CATEGORY:
        checks.append(pa.Check.isin(list(spec.categories)))
    elif spec.kind is Kind.LABEL:
        checks.append(pa.Check.isin([0, 1]))
    if spec.nullable:
        checks.append(null_rate_check(spec.max_null_rate))
    return pa.Column(
        _DTYPES[spec.kind],
        checks=checks,
        nullable=spec.nullable,
        unique=spec.kind is Kind.ID,
        description=spec.description,
    )


#: Days a snapshot may lie ahead of today (UTC): an export made just after midnight east of UTC.
FUTURE_TOLERANCE_DAYS = 1


def latest_snapshot(today: dt.date | None = None) -> dt.date:
    """The latest snapshot date a valid file may carry: today (UTC) plus :data:`FUTURE_TOLERANCE_DAYS`."""
    return (today or dt.datetime.now(dt.UTC).date()) + dt.timedelta(days=FUTURE_TOLERANCE_DAYS)


def not_after_check(latest: dt.date) -> pa.Check:
    """Dates on or before ``latest`` (a snapshot cannot be taken in the future)."""
    bound = pd.Timestamp(latest)
    return pa.Check(lambda s: s <= bound, name=f"not_after({latest.isoformat()})")


def raw_schema(min_rows: int = 1, *, today: dt.date | None = None) -> pa.DataFrameSchema:
    """The pandera schema of a raw customer file.

    Args:
        min_rows: Fewest rows a valid file may have.
        today: The date snapshots are checked against (default: today, UTC).

    """
    columns = {spec.name: _column(spec) for spec in RAW_COLUMNS}
    columns["snapshot_date"].checks.append(not_after_check(latest_snapshot(today)))
    return pa.DataFrameSchema(
        columns,
        checks=[
            pa.Check(lambda df: len(df) >= min_rows, name=f"min_rows({min_rows})"),
            *(_row_check(rule) for rule in ROW_RULES),
        ],
        strict=True,
        name="raw_customers",
    )
