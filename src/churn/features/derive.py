"""Raw customer records -> column arrays -> derived features.

Everything here is element-wise over rows: no statistic of the batch enters a row's
result, so one record alone and the same record inside a million-row batch give the
same numbers. Fitted quantities (RFM cut points, medians, scales) live in
:class:`churn.features.pipeline.FeaturePipeline`, never here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from churn.data.schema import CATEGORY_COLUMNS, COLUMNS_BY_NAME, Kind
from churn.errors import ChurnError

MISSING = "missing"
NUMERIC_INPUTS: tuple[str, ...] = (
    "age",
    "total_orders",
    "total_spend",
    "avg_order_value",
    "days_since_last_purchase",
    "total_returns",
    "discount_usage_rate",
    "sessions_last_30d",
    "pages_per_session",
    "email_open_rate",
    "app_usage_minutes_30d",
    "cart_abandonment_rate",
    "support_tickets_90d",
    "satisfaction_score",
)
DATE_INPUTS: tuple[str, ...] = ("signup_date", "snapshot_date")
#: Raw columns the feature code reads; anything else in the input (ids, label) is ignored.
FEATURE_INPUTS: tuple[str, ...] = DATE_INPUTS + NUMERIC_INPUTS + CATEGORY_COLUMNS
#: Raw numeric inputs that real exports leave empty; each gets a 0/1 "was missing" feature.
NULLABLE_INPUTS: tuple[str, ...] = tuple(c for c in NUMERIC_INPUTS if COLUMNS_BY_NAME[c].nullable)

DAYS_PER_MONTH = 30.4375

Columns = dict[str, np.ndarray]
RawRecords = pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]]


def to_columns(records: RawRecords) -> Columns:
    """Turn raw input into one array per feature input column.

    Args:
        records: A DataFrame, one record (a mapping of column -> value), a sequence of
            records, or a mapping of column -> sequence of values (columnar).

    Returns:
        Dates as ``datetime64[D]``, numbers as ``float64`` (missing = NaN), categories
        as ``str`` arrays (missing = ``"missing"``).

    Raises:
        ChurnError: A column is absent or holds values of the wrong kind.

    """
    if isinstance(records, pd.DataFrame):
        raw: Mapping[str, Any] = {c: records[c] for c in FEATURE_INPUTS if c in records.columns}
    elif isinstance(records, Mapping):
        first = next(iter(records.values()), None)
        columnar = isinstance(first, (list, tuple, np.ndarray, pd.Series))
        raw = records if columnar else {k: [v] for k, v in records.items()}
    else:
        rows = list(records)
        raw = {c: [r.get(c) for r in rows] for c in FEATURE_INPUTS if rows and c in rows[0]}
    missing = [c for c in FEATURE_INPUTS if c not in raw]
    if missing:
        raise ChurnError(f"raw records lack column(s): {', '.join(missing)}")
    return {name: _convert(name, raw[name]) for name in FEATURE_INPUTS}


def _convert(name: str, values: Any) -> np.ndarray:
    kind = COLUMNS_BY_NAME[name].kind
    if isinstance(values, np.ndarray):  # already typed (the serving contract's output): no per-value pass
        if kind is Kind.DATE and values.dtype.kind == "M":
            return values.astype("datetime64[D]")
        if kind is Kind.CATEGORY and values.dtype.kind == "U":
            return values
    try:
        if kind is Kind.DATE:
            if isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values):
                return values.to_numpy().astype("datetime64[D]")
            return np.asarray([None if _is_missing(v) else v for v in values], dtype="datetime64[D]")
        if kind is Kind.CATEGORY:
            if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
                labels = np.append(values.cat.categories.astype(str).to_numpy(dtype=str), MISSING)
                return labels[values.cat.codes.to_numpy()]  # code -1 (missing) picks the last label
            array = np.asarray(values, dtype=object)
            return np.where(pd.isna(array), MISSING, array).astype(str)
        if isinstance(values, pd.Series):
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        try:
            return np.asarray(values, dtype=np.float64)
        except TypeError:  # pd.NA and friends: map every missing marker to NaN
            array = np.asarray(values, dtype=object)
            return np.where(pd.isna(array), np.nan, array).astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ChurnError(f"column {name!r}: values are not of kind {kind.value} ({exc})") from None


def _is_missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def derive(cols: Columns) -> tuple[Columns, Columns]:
    """Compute the derived features that need no fitted state.

    Returns:
        ``(continuous, flags)``: continuous features (raw numbers plus RFM inputs,
        rates and the engagement score, NaN where unknown) and 0/1 churn-risk flags.

    """
    orders = cols["total_orders"]
    spend = cols["total_spend"]
    recency = cols["days_since_last_purchase"]
    sessions = cols["sessions_last_30d"]
    satisfaction = cols["satisfaction_score"]
    tickets = cols["support_tickets_90d"]
    cart = cols["cart_abandonment_rate"]

    gap = cols["snapshot_date"] - cols["signup_date"]
    tenure = np.where(np.isnat(gap), np.nan, gap.astype("timedelta64[D]").astype(np.float64))
    months = np.maximum(tenure / DAYS_PER_MONTH, 1.0)
    days_between_orders = _ratio(tenure, orders)
    overdue_ratio = _ratio(recency, days_between_orders)

    continuous = {name: cols[name] for name in NUMERIC_INPUTS}
    continuous |= {
        "tenure_days": tenure,
        "orders_per_month": orders / months,
        "spend_per_month": spend / months,
        "log_total_spend": np.log1p(np.maximum(spend, 0.0)),
        "log_avg_order_value": np.log1p(np.maximum(cols["avg_order_value"], 0.0)),
        "return_rate": _ratio(cols["total_returns"], orders),
        "days_between_orders": days_between_orders,
        "purchase_overdue_ratio": overdue_ratio,
        "engagement_score": engagement_score(cols),
    }
    flags = {
        "no_purchase_90d": recency > 90,
        "many_support_tickets": tickets >= 3,
        "low_satisfaction": satisfaction <= 2,
        "high_cart_abandonment": cart > 0.7,
        "purchase_overdue": overdue_ratio > 2.0,
        "new_customer": tenure < 90,
        "inactive_30d": sessions == 0,
    }
    flag_values = {name: value.astype(np.float64) for name, value in flags.items()}
    flag_values["risk_flag_count"] = sum(flag_values.values(), np.zeros(len(orders)))
    return continuous, flag_values


def engagement_score(cols: Columns) -> np.ndarray:
    """Mean of five engagement signals scaled to [0, 1]; unknown signals are left out.

    Sessions (20 a month = 1), pages per session (10 = 1), email open rate, app minutes
    (120 a month = 1) and cart completion (1 - abandonment). NaN when all are unknown.
    """
    parts = (
        np.minimum(cols["sessions_last_30d"] / 20.0, 1.0),
        np.minimum((cols["pages_per_session"] - 1.0) / 9.0, 1.0),
        cols["email_open_rate"],
        np.minimum(cols["app_usage_minutes_30d"] / 120.0, 1.0),
        1.0 - cols["cart_abandonment_rate"],
    )
    total = np.zeros(len(parts[0]))
    known = np.zeros(len(parts[0]))
    for part in parts:
        present = ~np.isnan(part)
        total = total + np.where(present, part, 0.0)
        known = known + present
    return _ratio(total, known)
