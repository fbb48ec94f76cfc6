"""The fitted feature pipeline: raw customer records in, model matrix out.

This is the one code path from raw records to model inputs. Training fits it and
transforms the training table with it; the KServe transformer loads the same fitted
object and transforms one request at a time. It is a scikit-learn estimator (``fit`` /
``transform`` / ``get_feature_names_out``, picklable, usable as the first step of a
``sklearn.pipeline.Pipeline``), but it applies its fitted statistics with plain NumPy:
a generic ``ColumnTransformer`` costs ~4 ms per single record, this ~0.1 ms.
The test suite checks that the imputation, scaling and one-hot encoding give the same
numbers as scikit-learn's ``SimpleImputer``, ``StandardScaler`` and ``OneHotEncoder``.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from churn.data.schema import CATEGORY_COLUMNS
from churn.errors import ChurnError
from churn.features.derive import NULLABLE_INPUTS, NUMERIC_INPUTS, Columns, RawRecords, derive, to_columns

#: Up to this many rows, transform imputes and scales the continuous columns as one block.
_BLOCK_ROWS = 4_096
RFM_INPUTS = {"recency": "days_since_last_purchase", "frequency": "orders_per_month", "monetary": "spend_per_month"}
#: The raw attributes each derived feature is computed from (raw numeric inputs are their own source).
#: Reasons roll a feature's contribution up to these, shared equally when there are several. The snapshot
#: date is the "as of" date of every derived quantity, not something the customer did: it is no source.
DERIVED_SOURCES: dict[str, tuple[str, ...]] = {
    "tenure_days": ("signup_date",),
    "orders_per_month": ("total_orders",),
    "spend_per_month": ("total_spend",),
    "log_total_spend": ("total_spend",),
    "log_avg_order_value": ("avg_order_value",),
    "return_rate": ("total_returns",),
    "days_between_orders": ("total_orders",),
    "purchase_overdue_ratio": ("days_since_last_purchase",),
    "engagement_score": (
        "sessions_last_30d",
        "pages_per_session",
        "email_open_rate",
        "app_usage_minutes_30d",
        "cart_abandonment_rate",
    ),
    "rfm_recency_score": ("days_since_last_purchase",),
    "rfm_frequency_score": ("total_orders",),
    "rfm_monetary_score": ("total_spend",),
    "rfm_score": ("days_since_last_purchase", "total_orders", "total_spend"),
    "no_purchase_90d": ("days_since_last_purchase",),
    "many_support_tickets": ("support_tickets_90d",),
    "low_satisfaction": ("satisfaction_score",),
    "high_cart_abandonment": ("cart_abandonment_rate",),
    "purchase_overdue": ("days_since_last_purchase",),
    "new_customer": ("signup_date",),
    "inactive_30d": ("sessions_last_30d",),
    "risk_flag_count": (
        "days_since_last_purchase",
        "support_tickets_90d",
        "satisfaction_score",
        "cart_abandonment_rate",
        "signup_date",
        "sessions_last_30d",
    ),
}


class FeaturePipeline(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Derive, impute, scale and one-hot encode raw customer records.

    Fitted on training data, it learns the RFM quantile cut points, the median of each
    numeric feature (imputation), its mean and standard deviation (scaling) and the
    categories of each categorical column (one-hot; unseen categories at serving time
    encode as all zeros rather than failing).

    Args:
        rfm_bins: Number of quantile bins of each RFM score (5 gives scores 1..5).

    """

    def __init__(self, rfm_bins: int = 5) -> None:
        self.rfm_bins = rfm_bins

    def fit(self, X: RawRecords, y: Any = None) -> Self:
        """Learn cut points, medians, scales and categories from raw training records."""
        cols = to_columns(X)
        continuous, _ = derive(cols)
        quantiles = np.linspace(0, 1, self.rfm_bins + 1)[1:-1]
        self.rfm_cuts_ = {
            name: np.unique(np.nanquantile(continuous[source], quantiles)) for name, source in RFM_INPUTS.items()
        }
        continuous |= self._rfm_scores(continuous)
        self.continuous_names_ = list(continuous)
        values = np.column_stack([continuous[n] for n in self.continuous_names_])
        medians = np.nanmedian(values, axis=0)
        self.medians_ = np.where(np.isnan(medians), 0.0, medians)
        filled = np.where(np.isnan(values), self.medians_, values)
        self.means_ = filled.mean(axis=0)
        scale = filled.std(axis=0)
        self.scales_ = np.where(scale > 0, scale, 1.0)
        self.categories_ = {name: np.unique(cols[name]) for name in CATEGORY_COLUMNS}
        _, flags = derive({k: v[:0] for k, v in cols.items()})
        self.binary_names_ = [f"{name}_missing" for name in NULLABLE_INPUTS] + list(flags)
        self.n_features_out_ = (
            len(self.continuous_names_) + len(self.binary_names_) + sum(len(c) for c in self.categories_.values())
        )
        # The average training row of the model matrix: linear reasons are measured from it.
        self.matrix_means_ = self.transform(X).mean(axis=0)
        return self

    def transform(self, X: RawRecords) -> np.ndarray:
        """Turn raw records into the model matrix (float64, one row per record)."""
        check_is_fitted(self, "medians_")
        cols = to_columns(X)
        n = len(cols["total_orders"])
        continuous, flags = derive(cols)
        continuous |= self._rfm_scores(continuous)
        # Column-major: every feature below is written as one contiguous column.
        out = np.zeros((n, self.n_features_out_), dtype=np.float64, order="F")
        k = len(self.continuous_names_)
        if n <= _BLOCK_ROWS:  # small batches (serving): one vectorised pass over all continuous columns
            block = np.column_stack([continuous[name] for name in self.continuous_names_])
            out[:, :k] = (np.where(np.isnan(block), self.medians_, block) - self.means_) / self.scales_
        else:  # large tables: column by column, no n x k temporary
            for j, name in enumerate(self.continuous_names_):
                value = continuous[name]
                out[:, j] = (np.where(np.isnan(value), self.medians_[j], value) - self.means_[j]) / self.scales_[j]
        j = k
        for name in NULLABLE_INPUTS:
            out[:, j] = np.isnan(cols[name])
            j += 1
        for value in flags.values():
            out[:, j] = value
            j += 1
        rows = np.arange(n)
        for name, vocabulary in self.categories_.items():
            code = np.searchsorted(vocabulary, cols[name])
            known = vocabulary[np.minimum(code, len(vocabulary) - 1)] == cols[name]
            out[rows[known], j + code[known]] = 1.0
            j += len(vocabulary)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the model matrix columns, in order."""
        check_is_fitted(self, "medians_")
        one_hot = [f"{name}={value}" for name, vocabulary in self.categories_.items() for value in vocabulary]
        return np.asarray(self.continuous_names_ + self.binary_names_ + one_hot, dtype=object)

    def feature_sources(self) -> list[tuple[str, ...]]:
        """The raw attributes each model matrix column comes from, in column order.

        Raw numbers are their own source, missing flags the column they flag, one-hot
        columns their categorical column, and derived features, RFM scores and risk flags
        the raw attributes listed in :data:`DERIVED_SOURCES`. Reasons roll up to these.
        """
        check_is_fitted(self, "medians_")
        sources: list[tuple[str, ...]] = []
        for name in self.continuous_names_ + self.binary_names_:
            if name in DERIVED_SOURCES:
                sources.append(DERIVED_SOURCES[name])
            elif name.endswith("_missing") and name.removesuffix("_missing") in NULLABLE_INPUTS:
                sources.append((name.removesuffix("_missing"),))
            elif name in NUMERIC_INPUTS:
                sources.append((name,))
            else:
                raise ChurnError(f"feature {name!r} declares no raw source (add it to DERIVED_SOURCES)")
        sources += [(name,) for name, vocabulary in self.categories_.items() for _ in vocabulary]
        return sources

    def derive_frame(self, X: RawRecords) -> pd.DataFrame:
        """Derived features before imputation, scaling and encoding, for inspection and reports."""
        check_is_fitted(self, "medians_")
        cols = to_columns(X)
        continuous, flags = derive(cols)
        continuous |= self._rfm_scores(continuous)
        indicators = {f"{name}_missing": np.isnan(cols[name]).astype(np.float64) for name in NULLABLE_INPUTS}
        return pd.DataFrame(continuous | indicators | flags | {name: cols[name] for name in CATEGORY_COLUMNS})

    def _rfm_scores(self, continuous: Columns) -> Columns:
        """RFM scores 1..bins from the fitted cut points (recency reversed: recent = high)."""
        scores = {}
        for name, source in RFM_INPUTS.items():
            value = continuous[source]
            score = 1.0 + np.searchsorted(self.rfm_cuts_[name], value, side="right")
            if name == "recency":
                score = len(self.rfm_cuts_[name]) + 2.0 - score
            scores[f"rfm_{name}_score"] = np.where(np.isnan(value), np.nan, score)
        scores["rfm_score"] = scores["rfm_recency_score"] + scores["rfm_frequency_score"] + scores["rfm_monetary_score"]
        return scores
