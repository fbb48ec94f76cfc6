from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from churn.data import SCENARIOS, generate_customers, iter_customer_blocks
from churn.data.schema import COLUMNS_BY_NAME, RAW_COLUMN_NAMES, Kind
from churn.errors import ChurnError
from churn.validation import DataValidationError, validate_frame

pytestmark = pytest.mark.unit


def test_columns_are_the_declared_schema_in_order(raw_frame: pd.DataFrame) -> None:
    assert tuple(raw_frame.columns) == RAW_COLUMN_NAMES
    assert len(RAW_COLUMN_NAMES) >= 20
    kinds = {COLUMNS_BY_NAME[c].kind for c in raw_frame.columns}
    assert {Kind.ID, Kind.DATE, Kind.INT, Kind.FLOAT, Kind.CATEGORY, Kind.LABEL} <= kinds


def test_generated_data_passes_validation(raw_frame: pd.DataFrame) -> None:
    _, report = validate_frame(raw_frame, min_rows=1000)
    assert report.valid
    assert report.rows == len(raw_frame)


def test_default_churn_rate_is_in_the_stated_band(raw_frame: pd.DataFrame) -> None:
    assert 0.20 <= raw_frame["churned"].mean() <= 0.30


@pytest.mark.parametrize("target", [0.10, 0.25, 0.40])
def test_churn_rate_is_configurable(target: float) -> None:
    frame = generate_customers(20_000, "2026-01-05", seed=3, churn_rate=target).frame
    assert frame["churned"].mean() == pytest.approx(target, abs=0.02)


def test_true_probability_is_a_probability_and_explains_churn() -> None:
    generated = generate_customers(20_000, "2026-01-05", seed=5)
    p = generated.true_probability
    assert p.shape == (20_000,)
    assert np.all((p > 0) & (p < 1))
    # Labels are Bernoulli(p): the mean matches and p ranks churners well above chance.
    assert generated.frame["churned"].mean() == pytest.approx(p.mean(), abs=0.015)
    assert 0.75 < roc_auc_score(generated.frame["churned"], p) < 0.97
    assert "true_churn_probability" not in generated.frame.columns


def test_marginals_look_like_a_shop(raw_frame: pd.DataFrame) -> None:
    spend = raw_frame["total_spend"]
    assert spend.mean() > spend.median() * 1.3  # right-skewed money
    orders = raw_frame["total_orders"]
    assert orders.var() > orders.mean()  # over-dispersed counts
    for rate in ("discount_usage_rate", "email_open_rate", "cart_abandonment_rate"):
        assert raw_frame[rate].dropna().between(0, 1).all()
    # Correlated behaviour: engaged customers visit more and open more emails.
    assert raw_frame["sessions_last_30d"].corr(raw_frame["email_open_rate"]) > 0.1
    assert raw_frame["total_orders"].corr(raw_frame["total_spend"]) > 0.5
    # A few percent missing where real exports have gaps, none elsewhere.
    null_rates = raw_frame.isna().mean()
    for name, rate in null_rates.items():
        spec = COLUMNS_BY_NAME[str(name)]
        assert rate <= spec.max_null_rate
        if spec.nullable:
            assert 0.01 < rate < 0.15, name


def test_same_arguments_give_identical_rows() -> None:
    a = generate_customers(5_000, "2026-03-01", seed=9, scenario="price_shock")
    b = generate_customers(5_000, "2026-03-01", seed=9, scenario="price_shock")
    pd.testing.assert_frame_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.true_probability, b.true_probability)
    c = generate_customers(5_000, "2026-03-02", seed=9, scenario="price_shock")
    assert not a.frame["total_spend"].equals(c.frame["total_spend"])


def test_blocks_stream_the_same_rows_as_one_frame() -> None:
    rows = 70_000  # spans two blocks
    whole = generate_customers(rows, "2026-01-05", seed=2)
    blocks = list(iter_customer_blocks(rows, "2026-01-05", seed=2))
    assert len(blocks) == 2
    pd.testing.assert_frame_equal(pd.concat([b.frame for b in blocks]).reset_index(drop=True), whole.frame)
    assert whole.frame["customer_id"].is_unique


_EXPECTED_DIRECTION = {
    "price_shock": {"avg_order_value": +1, "discount_usage_rate": +1, "cart_abandonment_rate": +1, "total_orders": -1},
    "engagement_decline": {
        "sessions_last_30d": -1,
        "app_usage_minutes_30d": -1,
        "email_open_rate": -1,
        "days_since_last_purchase": +1,
    },
    "service_outage": {"support_tickets_90d": +1, "satisfaction_score": -1},
}


@pytest.mark.parametrize("name", [s for s in SCENARIOS if s != "none"])
def test_scenarios_move_their_stated_columns_and_raise_churn(name: str, raw_frame: pd.DataFrame) -> None:
    base = generate_customers(20_000, "2026-01-05", seed=11)
    drifted = generate_customers(20_000, "2026-01-05", seed=11, scenario=name).frame
    assert set(SCENARIOS[name].moved_columns) <= set(drifted.columns)
    for column, sign in _EXPECTED_DIRECTION.get(name, {}).items():
        change = drifted[column].astype(float).mean() / base.frame[column].astype(float).mean() - 1
        assert sign * change > 0.05, (column, change)
    if name == "channel_shift":
        shares = drifted["acquisition_channel"].value_counts(normalize=True)
        assert shares["social"] == pytest.approx(0.40, abs=0.02)
        assert shares["affiliate"] == pytest.approx(0.25, abs=0.02)
    assert drifted["churned"].mean() > base.frame["churned"].mean() + 0.03
    # Columns the scenario does not name stay put.
    assert drifted["age"].mean() == pytest.approx(base.frame["age"].mean(), rel=0.02)


def test_strength_zero_is_no_drift() -> None:
    base = generate_customers(3_000, "2026-01-05", seed=1).frame
    zero = generate_customers(3_000, "2026-01-05", seed=1, scenario="price_shock", strength=0.0).frame
    pd.testing.assert_frame_equal(base, zero)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": -1}, "rows"),
        ({"rows": 10, "scenario": "meteor"}, "meteor"),
        ({"rows": 10, "date": "2026-02-30"}, "2026-02-30"),
        ({"rows": 10, "churn_rate": 0.0}, "churn_rate"),
        ({"rows": 10, "strength": -1.0}, "strength"),
    ],
)
def test_bad_arguments_raise_a_clear_error_at_once(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ChurnError, match=message):
        iter_customer_blocks(**kwargs)  # type: ignore[arg-type]


@given(
    rows=st.integers(min_value=1, max_value=400),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    scenario=st.sampled_from(sorted(SCENARIOS)),
    churn_rate=st.floats(min_value=0.05, max_value=0.6),
)
def test_any_generated_batch_is_valid_and_deterministic(rows: int, seed: int, scenario: str, churn_rate: float) -> None:
    first = generate_customers(rows, "2026-06-30", seed=seed, scenario=scenario, churn_rate=churn_rate)
    second = generate_customers(rows, "2026-06-30", seed=seed, scenario=scenario, churn_rate=churn_rate)
    pd.testing.assert_frame_equal(first.frame, second.frame)
    assert np.all((first.true_probability >= 0) & (first.true_probability <= 1))
    # A tiny batch can exceed a column's null budget by chance; every other rule must hold.
    try:
        validate_frame(first.frame, min_rows=1)
    except DataValidationError as exc:
        rules = {v.rule for v in exc.report.violations}
        assert all(rule.startswith("max_null_rate") for rule in rules), exc.report.summary()
