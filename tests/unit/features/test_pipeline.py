from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from churn.data import generate_customers
from churn.data.schema import CATEGORY_COLUMNS, COLUMNS_BY_NAME
from churn.errors import ChurnError
from churn.features import FeaturePipeline
from churn.features.build import build_features, load_pipeline
from churn.features.derive import NULLABLE_INPUTS
from churn.validation import validate_frame

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def fitted(raw_frame: pd.DataFrame) -> FeaturePipeline:
    return FeaturePipeline().fit(raw_frame)


def _json_records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """What a serving client sends: JSON values, dates as strings, nulls as None."""
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="s"))  # type: ignore[no-any-return]


def test_one_batch_equals_row_by_row_for_10000_rows(fitted: FeaturePipeline) -> None:
    raw = generate_customers(10_000, "2026-02-01", seed=21).frame
    batch = fitted.transform(raw)
    rows = np.vstack([fitted.transform(record) for record in _json_records(raw)])
    np.testing.assert_array_equal(batch, rows)
    # The same through one-row DataFrames (the path a pandas caller takes).
    np.testing.assert_array_equal(batch[:500], np.vstack([fitted.transform(raw.iloc[[i]]) for i in range(500)]))


def test_json_records_give_the_same_matrix_as_the_frame(fitted: FeaturePipeline) -> None:
    raw = generate_customers(2_000, "2026-02-01", seed=22).frame
    records = _json_records(raw)
    np.testing.assert_array_equal(fitted.transform(raw), fitted.transform(records))
    one_by_one = np.vstack([fitted.transform(record) for record in records[:300]])
    np.testing.assert_array_equal(fitted.transform(raw.head(300)), one_by_one)
    columnar = {c: raw[c].tolist() for c in raw.columns}
    np.testing.assert_array_equal(fitted.transform(raw), fitted.transform(columnar))


def test_validated_file_frame_gives_the_same_matrix_as_the_generated_frame(
    fitted: FeaturePipeline, raw_frame: pd.DataFrame
) -> None:
    typed, _ = validate_frame(raw_frame.head(3_000))
    np.testing.assert_array_equal(fitted.transform(typed), fitted.transform(raw_frame.head(3_000)))


def test_preprocessing_matches_scikit_learn(fitted: FeaturePipeline, raw_frame: pd.DataFrame) -> None:
    """Impute/scale/one-hot give what SimpleImputer, StandardScaler and OneHotEncoder give."""
    derived = fitted.derive_frame(raw_frame)
    continuous = fitted.continuous_names_
    categorical = list(CATEGORY_COLUMNS)
    reference = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), continuous),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ]
    ).fit(derived)
    expected = reference.transform(derived)
    ours = fitted.transform(raw_frame)
    n_cont = len(continuous)
    n_bin = len(fitted.binary_names_)
    np.testing.assert_allclose(ours[:, :n_cont], expected[:, :n_cont], rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(ours[:, n_cont + n_bin :], expected[:, n_cont:])


def test_no_nan_and_names_match_columns(fitted: FeaturePipeline, raw_frame: pd.DataFrame) -> None:
    matrix = fitted.transform(raw_frame)
    names = fitted.get_feature_names_out()
    assert matrix.shape == (len(raw_frame), len(names))
    assert np.isfinite(matrix).all()
    assert len(set(names)) == len(names)
    for expected in ("rfm_recency_score", "rfm_score", "engagement_score", "no_purchase_90d", "country=DE"):
        assert expected in names
    assert "churned" not in names and "customer_id" not in names


def test_missing_indicators_and_risk_flags(fitted: FeaturePipeline) -> None:
    names = list(fitted.get_feature_names_out())
    record = _json_records(generate_customers(1, "2026-02-01", seed=3).frame)[0]
    record |= {"age": None, "days_since_last_purchase": 200, "support_tickets_90d": 4, "satisfaction_score": 1}
    row = fitted.transform(record)[0]
    assert row[names.index("age_missing")] == 1.0
    assert row[names.index("no_purchase_90d")] == 1.0
    assert row[names.index("many_support_tickets")] == 1.0
    assert row[names.index("low_satisfaction")] == 1.0
    assert set(NULLABLE_INPUTS) == {c.name for c in COLUMNS_BY_NAME.values() if c.nullable and c.kind == "int"} | {
        c.name for c in COLUMNS_BY_NAME.values() if c.nullable and c.kind == "float"
    }


def test_rfm_cut_points_are_fitted_once_not_per_batch(fitted: FeaturePipeline) -> None:
    names = list(fitted.get_feature_names_out())
    cuts = {k: v.copy() for k, v in fitted.rfm_cuts_.items()}
    # A batch of only very recent customers: per-batch quantiles would spread them over 1..5.
    raw = generate_customers(500, "2026-02-01", seed=4).frame.assign(days_since_last_purchase=1)
    raw_scores = fitted.derive_frame(raw)["rfm_recency_score"]
    assert (raw_scores == fitted.rfm_bins).all()
    fitted.transform(raw)
    for key, value in cuts.items():
        np.testing.assert_array_equal(fitted.rfm_cuts_[key], value)
    assert "rfm_recency_score" in names


def test_unknown_categories_are_encoded_as_zeros_not_errors(fitted: FeaturePipeline) -> None:
    record = _json_records(generate_customers(1, "2026-02-01", seed=3).frame)[0]
    record |= {"country": "Atlantis", "payment_method": None, "preferred_device": 7}
    row = fitted.transform(record)[0]
    names = list(fitted.get_feature_names_out())
    country = [i for i, n in enumerate(names) if n.startswith("country=")]
    assert row[country].sum() == 0.0
    assert np.isfinite(row).all()


def test_missing_column_is_named(fitted: FeaturePipeline) -> None:
    record = _json_records(generate_customers(1, "2026-02-01", seed=3).frame)[0]
    del record["total_orders"]
    with pytest.raises(ChurnError, match="total_orders"):
        fitted.transform(record)
    with pytest.raises(ChurnError, match="age"):
        fitted.transform({**record, "total_orders": 3, "age": "old"})


def test_unfitted_pipeline_refuses_to_transform(raw_frame: pd.DataFrame) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        FeaturePipeline().transform(raw_frame.head(2))


def test_is_a_scikit_learn_estimator(fitted: FeaturePipeline, raw_frame: pd.DataFrame) -> None:
    assert clone(fitted).get_params() == {"rfm_bins": 5}
    model = make_pipeline(FeaturePipeline(rfm_bins=4), LogisticRegression(max_iter=300))
    model.fit(raw_frame.head(5_000), raw_frame["churned"].head(5_000))
    proba = model.predict_proba(raw_frame.tail(2_000))[:, 1]
    assert np.all((proba >= 0) & (proba <= 1))
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(raw_frame.head(100)), fitted.transform(raw_frame.head(100)))


def test_build_features_writes_table_and_loadable_pipeline(tmp_path, raw_frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    raw = raw_frame.head(4_000)
    outputs = build_features(raw, tmp_path / "features.parquet", tmp_path / "pipe", rfm_bins=4, source="x.csv")
    table = pd.read_parquet(outputs.table)
    pipeline = load_pipeline(outputs.pipeline)
    assert list(table.columns[1:-1]) == list(pipeline.get_feature_names_out())
    assert table["customer_id"].tolist() == raw["customer_id"].tolist()
    assert table["churned"].tolist() == raw["churned"].tolist()
    assert not any("prob" in c for c in table.columns)
    np.testing.assert_allclose(table.iloc[:, 1:-1].to_numpy(), pipeline.transform(raw).astype(np.float32))
    metadata = json.loads(outputs.metadata.read_text())
    assert metadata["rfm_bins"] == 4 and metadata["rows"] == 4_000
    assert len(metadata["feature_names"]) == outputs.features


def test_load_pipeline_explains_bad_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ChurnError, match="does not exist"):
        load_pipeline(tmp_path / "nope.joblib")
    (tmp_path / "junk.joblib").write_bytes(b"not a pickle")
    with pytest.raises(ChurnError, match="cannot be loaded"):
        load_pipeline(tmp_path / "junk.joblib")


_NULLABLE = [c.name for c in COLUMNS_BY_NAME.values() if c.nullable]


@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(1, 60),
    blank=st.lists(st.sampled_from(_NULLABLE), unique=True),
    blank_share=st.floats(0.0, 1.0),
)
def test_no_nan_after_preprocessing_whatever_is_missing(
    fitted: FeaturePipeline, seed: int, rows: int, blank: list[str], blank_share: float
) -> None:
    raw = generate_customers(rows, "2026-02-01", seed=seed).frame
    mask = np.random.default_rng(seed).random(rows) < blank_share
    for column in blank:
        raw[column] = raw[column].astype(object).where(~mask, None)
    matrix = fitted.transform(raw)
    assert np.isfinite(matrix).all()
    np.testing.assert_array_equal(matrix, np.vstack([fitted.transform(raw.iloc[[i]]) for i in range(rows)]))
