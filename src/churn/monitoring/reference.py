"""The reference profile: what "normal" looked like when the champion was trained.

A few kilobytes of JSON instead of the training frame: the PSI bin edges and bin
proportions of every numeric feature, a finer sketch of its distribution (about 100
quantile bins with their shares and means, for the Wasserstein and Kolmogorov-Smirnov
checks), the category frequencies of every categorical
feature, the churn rate, and (optionally) the distribution of the model's predicted
probabilities and its test ROC-AUC. It is fitted once at training time and logged to
MLflow with the model, so monitoring never needs the training data again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from churn.data.schema import CATEGORY_COLUMNS, LABEL, RAW_COLUMNS, Kind
from churn.errors import ChurnError
from churn.monitoring.stats import bin_counts, bin_moments, quantile_edges

FORMAT_VERSION = 1
#: Name of the bin (or category) that counts missing values.
MISSING = "<missing>"
#: Numeric raw columns (the feature code's ``NUMERIC_INPUTS``, read from the schema without importing it).
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c.name for c in RAW_COLUMNS if c.kind in (Kind.INT, Kind.FLOAT))


@dataclass(frozen=True)
class ValueSketch:
    """A fine summary of one numeric column's present values: enough for scale-aware distances.

    Attributes:
        edges: Inner edges at (about 100) reference quantiles, fenced by one edge just below
            the minimum and one at the maximum; bins as in :class:`NumericProfile`.
        proportions: Share of the present values per bin (``len(edges) + 1`` numbers, sum 1).
        means: Mean value per bin.
        std: Standard deviation of the present values (the Wasserstein distance's unit).
        rows: Present (non-missing) values behind it.

    """

    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    means: tuple[float, ...]
    std: float
    rows: int


@dataclass(frozen=True)
class NumericProfile:
    """Reference distribution of one numeric column on its quantile bins.

    Attributes:
        edges: Inner edges; bins are ``(-inf, e0], (e0, e1], ..., (e_last, inf)``.
        proportions: Share of reference rows per bin, then the share of missing values
            (``len(edges) + 2`` numbers).
        sketch: The finer summary for the Wasserstein check (None in profiles fitted
            before it existed: that check is then skipped).

    """

    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    sketch: ValueSketch | None = None

    @property
    def bin_labels(self) -> list[str]:
        """Human-readable bin names, e.g. ``<= 3``, ``(3, 7]``, ``> 7``, then ``<missing>``."""
        e = [f"{x:.6g}" for x in self.edges]
        if not e:
            return ["all", MISSING]
        return [f"<= {e[0]}", *(f"({a}, {b}]" for a, b in pairwise(e)), f"> {e[-1]}", MISSING]


@dataclass(frozen=True)
class CategoricalProfile:
    """Reference frequencies of one categorical column.

    Attributes:
        categories: Categories known at reference time (the column's declared
            categories when it has a categorical dtype, else those observed).
        proportions: Share of reference rows per category, then the share of missing
            values (``len(categories) + 1`` numbers).

    """

    categories: tuple[str, ...]
    proportions: tuple[float, ...]


@dataclass(frozen=True)
class ReferenceProfile:
    """Everything the drift checks need to know about the reference data.

    Attributes:
        rows: Reference rows.
        numeric: Numeric column -> its binned distribution.
        categorical: Categorical column -> its category frequencies.
        churn_rate: Observed churn rate (None when the reference had no labels).
        prediction: Binned distribution of the predicted churn probabilities, if given.
        prediction_mean: Mean predicted probability, if given.
        prediction_std: Standard deviation of the predicted probabilities, if given.
        roc_auc: The champion's ROC-AUC on its test split, if known.
        roc_auc_standard_error: The standard error of that estimate (a test split of a
            few hundred rows is itself noisy; the performance check counts this in).
        created_at: When the profile was fitted (UTC, ISO 8601).

    """

    rows: int
    numeric: dict[str, NumericProfile]
    categorical: dict[str, CategoricalProfile]
    churn_rate: float | None = None
    prediction: NumericProfile | None = None
    prediction_mean: float | None = None
    prediction_std: float | None = None
    roc_auc: float | None = None
    roc_auc_standard_error: float | None = None
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` reads it back exactly."""
        return {
            "format_version": FORMAT_VERSION,
            "rows": self.rows,
            "created_at": self.created_at,
            "churn_rate": self.churn_rate,
            "roc_auc": self.roc_auc,
            "roc_auc_standard_error": self.roc_auc_standard_error,
            "prediction_mean": self.prediction_mean,
            "prediction_std": self.prediction_std,
            "prediction": _numeric_dict(self.prediction) if self.prediction else None,
            "numeric": {name: _numeric_dict(p) for name, p in self.numeric.items()},
            "categorical": {
                name: {"categories": list(p.categories), "proportions": list(p.proportions)}
                for name, p in self.categorical.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output.

        Raises:
            ChurnError: The data is not a reference profile of a known format version.

        """
        version = data.get("format_version") if isinstance(data, Mapping) else None
        if version != FORMAT_VERSION:
            raise ChurnError(f"not a reference profile of format version {FORMAT_VERSION} (got {version!r})")
        try:
            prediction = data.get("prediction")
            return cls(
                rows=int(data["rows"]),
                created_at=str(data["created_at"]),
                churn_rate=_optional_float(data.get("churn_rate")),
                roc_auc=_optional_float(data.get("roc_auc")),
                roc_auc_standard_error=_optional_float(data.get("roc_auc_standard_error")),
                prediction_mean=_optional_float(data.get("prediction_mean")),
                prediction_std=_optional_float(data.get("prediction_std")),
                prediction=_numeric_profile(prediction) if prediction else None,
                numeric={name: _numeric_profile(p) for name, p in data["numeric"].items()},
                categorical={name: _categorical_profile(p) for name, p in data["categorical"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ChurnError(f"reference profile is malformed: {exc!r}") from None


def fit_reference(
    frame: pd.DataFrame,
    probabilities: np.ndarray | Sequence[float] | None = None,
    *,
    roc_auc: float | None = None,
    roc_auc_standard_error: float | None = None,
    bins: int = 10,
    sketch_bins: int = 100,
    numeric: Sequence[str] = NUMERIC_COLUMNS,
    categorical: Sequence[str] = CATEGORY_COLUMNS,
    label: str = LABEL,
) -> ReferenceProfile:
    """Fit the reference profile of a (training) frame.

    Args:
        frame: Reference rows, e.g. the champion's training split of the raw export.
        probabilities: The model's churn probabilities for those rows (optional).
        roc_auc: The model's test ROC-AUC, the yardstick of the performance check.
        roc_auc_standard_error: Its standard error (from the test split's class counts).
        bins: Quantile bins per numeric column (ties merge bins).
        sketch_bins: Quantile bins of each numeric column's finer sketch (0 = none).
        numeric: Numeric columns to profile.
        categorical: Categorical columns to profile.
        label: Label column; its mean is the reference churn rate (skipped if absent).

    Raises:
        ChurnError: The frame is empty, lacks a column, or a column has the wrong kind.

    """
    require_columns(frame, [*numeric, *categorical], "reference")
    rows = len(frame)
    profiles: dict[str, NumericProfile] = {}
    for name in numeric:
        values = numeric_values(frame[name], name)
        profiles[name] = _fit_numeric(values, bins, sketch_bins)
    categories: dict[str, CategoricalProfile] = {}
    for name in categorical:
        known, counts = category_counts(frame[name])
        categories[name] = CategoricalProfile(known, _floats(counts / rows))
    churn_rate = None
    if label in frame.columns:
        labels = numeric_values(frame[label], label)
        labels = labels[~np.isnan(labels)]
        churn_rate = float(labels.mean()) if labels.size else None
    prediction = prediction_mean = prediction_std = None
    if probabilities is not None:
        p = check_probabilities(probabilities, rows, "reference")
        prediction = _fit_numeric(p, bins)
        prediction_mean, prediction_std = float(p.mean()), float(p.std())
    return ReferenceProfile(
        rows=rows,
        numeric=profiles,
        categorical=categories,
        churn_rate=churn_rate,
        prediction=prediction,
        prediction_mean=prediction_mean,
        prediction_std=prediction_std,
        roc_auc=None if roc_auc is None else float(roc_auc),
        roc_auc_standard_error=None if roc_auc_standard_error is None else float(roc_auc_standard_error),
    )


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise a :class:`ChurnError` when ``frame`` is empty or lacks any of ``columns``."""
    if not isinstance(frame, pd.DataFrame):
        raise ChurnError(f"{what} data must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ChurnError(f"{what} data lacks column(s): {', '.join(missing)}")
    if len(frame) == 0:
        raise ChurnError(f"{what} data is empty: there are no rows to compare")


def numeric_values(series: pd.Series, name: str) -> np.ndarray:
    """A column as ``float64`` with NaN for missing values, or a :class:`ChurnError`."""
    try:
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    except (TypeError, ValueError):
        example = series.dropna().head(1).tolist()
        raise ChurnError(f"column {name!r} must be numeric, found e.g. {example!r}") from None


def category_counts(series: pd.Series) -> tuple[tuple[str, ...], np.ndarray]:
    """Categories of a column and their counts, the last count being missing values.

    A categorical dtype keeps its declared categories (unobserved ones count 0) and is
    counted from its integer codes; any other dtype is factorised. Values are compared
    as strings.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = np.asarray(series.cat.codes.to_numpy(), dtype=np.int64)
        names = series.cat.categories
    else:
        codes, names = pd.factorize(series, use_na_sentinel=True)
    counts = np.bincount(codes + 1, minlength=len(names) + 1)
    return tuple(str(c) for c in names), np.concatenate([counts[1:], counts[:1]])


def check_probabilities(probabilities: np.ndarray | Sequence[float], rows: int, what: str) -> np.ndarray:
    """Probabilities as a float array aligned with ``rows`` rows, all in [0, 1]."""
    try:
        p = np.asarray(probabilities, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ChurnError(f"{what} probabilities must be numbers") from None
    if p.size != rows:
        raise ChurnError(f"{what} probabilities: {p.size} values for {rows} rows")
    bad = ~((p >= 0.0) & (p <= 1.0))
    if bad.any():
        raise ChurnError(f"{what} probabilities must lie in [0, 1]; {int(bad.sum())} do not, e.g. {p[bad][0]!r}")
    return p


def chunks(rows: int, size: int) -> Iterator[slice]:
    """Row slices of at most ``size`` rows covering ``range(rows)``."""
    for start in range(0, rows, size):
        yield slice(start, min(start + size, rows))


def _fit_numeric(values: np.ndarray, bins: int, sketch_bins: int = 0) -> NumericProfile:
    edges = quantile_edges(values, bins)
    counts = bin_counts(values, edges)
    return NumericProfile(_floats(edges), _floats(counts / values.size), fit_sketch(values, sketch_bins))


def fit_sketch(values: np.ndarray, bins: int) -> ValueSketch | None:
    """The :class:`ValueSketch` of ``values`` on ``bins`` quantile bins (None for no bins or no present value)."""
    present = values[~np.isnan(values)]
    if bins <= 0 or present.size == 0:
        return None
    # Two more edges fence the reference's range in, so a current value below its minimum or
    # above its maximum lands in a bin of its own: seen by KS too, even for a constant column.
    low, high = float(present.min()), float(present.max())
    edges = np.concatenate([[np.nextafter(low, -np.inf)], quantile_edges(present, bins), [high]])
    counts, sums = bin_moments(present, edges)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    # Eight significant digits keep the JSON small and change no distance measurably.
    return ValueSketch(
        _floats(edges), _short(counts / present.size), _short(means), float(f"{present.std():.8g}"), present.size
    )


def _short(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(f"{v:.8g}") for v in values)


def _numeric_dict(profile: NumericProfile) -> dict[str, Any]:
    data: dict[str, Any] = {"edges": list(profile.edges), "proportions": list(profile.proportions)}
    if profile.sketch is not None:
        s = profile.sketch
        data["sketch"] = {
            "edges": list(s.edges),
            "proportions": list(s.proportions),
            "means": list(s.means),
            "std": s.std,
            "rows": s.rows,
        }
    return data


def _numeric_profile(data: Mapping[str, Any]) -> NumericProfile:
    sketch = None
    if data.get("sketch") is not None:
        raw = data["sketch"]
        sketch = ValueSketch(
            _floats(raw["edges"]),
            _floats(raw["proportions"]),
            _floats(raw["means"]),
            float(raw["std"]),
            int(raw["rows"]),
        )
        if not len(sketch.proportions) == len(sketch.means) == len(sketch.edges) + 1:
            raise ValueError("a value sketch needs len(edges) + 1 proportions and means")
    profile = NumericProfile(_floats(data["edges"]), _floats(data["proportions"]), sketch)
    if len(profile.proportions) != len(profile.edges) + 2:
        raise ValueError("a numeric profile needs len(edges) + 2 proportions")
    return profile


def _categorical_profile(data: Mapping[str, Any]) -> CategoricalProfile:
    profile = CategoricalProfile(tuple(str(c) for c in data["categories"]), _floats(data["proportions"]))
    if len(profile.proportions) != len(profile.categories) + 1:
        raise ValueError("a categorical profile needs len(categories) + 1 proportions")
    return profile


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
