"""Reasons add up: for every family, contributions plus bias are the model's own output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.data import generate_customers
from churn.errors import ChurnError
from churn.features.derive import FEATURE_INPUTS, to_columns
from churn.features.pipeline import FeaturePipeline
from churn.scoring.reasons import (
    LOG_ODDS,
    PATH,
    PROBABILITY,
    Explainer,
    agreement,
    format_value,
    reason_records,
    render,
    top_reasons,
)
from churn.training import FAMILIES, ChurnModel, split_frame, train_family

pytestmark = pytest.mark.unit

SMALL = {
    "logistic_regression": {"C": 1.0, "max_iter": 500},
    "random_forest": {"n_estimators": 25, "max_depth": 6, "min_samples_leaf": 20},
    "xgboost": {"n_estimators": 60, "max_depth": 3, "early_stopping_rounds": 10},
    "lightgbm": {"n_estimators": 60, "num_leaves": 7, "early_stopping_rounds": 10},
}


@pytest.fixture(scope="module")
def parts() -> dict[str, pd.DataFrame]:
    return split_frame(generate_customers(4_000, "2026-01-05", seed=21).frame, seed=3)


@pytest.fixture(scope="module")
def models(parts: dict[str, pd.DataFrame]) -> dict[str, ChurnModel]:
    return {f: train_family(f, parts["train"], parts["validation"], SMALL[f], n_jobs=1) for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_contributions_plus_bias_are_the_models_output(
    family: str, models: dict[str, ChurnModel], parts: dict[str, pd.DataFrame]
) -> None:
    model = models[family]
    explainer = Explainer(model)
    matrix = model.features.transform(parts["test"])
    found = explainer.contributions(matrix)
    output = explainer.output(matrix)
    total = found.values.sum(axis=1) + found.bias
    if family == "random_forest":
        assert found.unit == PROBABILITY
        np.testing.assert_allclose(total, model.predict_matrix(matrix), rtol=0, atol=1e-6)
    else:
        assert found.unit == LOG_ODDS
        # XGBoost computes its margin and its contributions in float32: agreement to float32 precision.
        tolerance = {"rtol": 1e-6, "atol": 1e-6} if family == "xgboost" else {"rtol": 0, "atol": 1e-6}
        np.testing.assert_allclose(total, output, **tolerance)
        probability = 1 / (1 + np.exp(-output))
        np.testing.assert_allclose(probability, model.predict_matrix(matrix), rtol=0, atol=1e-6)
    # Not trivially additive: rows differ and several attributes carry weight.
    assert np.ptp(total) > 0.1
    assert (np.abs(found.values) > 1e-3).sum(axis=1).mean() > 3


def test_booster_roll_up_keeps_the_per_feature_sum(
    models: dict[str, ChurnModel], parts: dict[str, pd.DataFrame]
) -> None:
    model = models["lightgbm"]
    explainer = Explainer(model)
    matrix = model.features.transform(parts["test"].head(200))
    per_feature, bias = explainer.feature_contributions(matrix)
    rolled = explainer.contributions(matrix)
    np.testing.assert_allclose(rolled.values.sum(axis=1), per_feature[:, :-1].sum(axis=1), atol=1e-12)
    assert rolled.bias == bias


def test_every_model_feature_rolls_up_to_raw_attributes(models: dict[str, ChurnModel]) -> None:
    features = models["xgboost"].features
    sources = features.feature_sources()
    names = features.get_feature_names_out().tolist()
    assert len(sources) == len(names)
    assert all(source and set(source) <= set(FEATURE_INPUTS) for source in sources)
    by_name = dict(zip(names, sources, strict=True))
    assert by_name["rfm_recency_score"] == ("days_since_last_purchase",)
    assert by_name["no_purchase_90d"] == ("days_since_last_purchase",)
    assert by_name["satisfaction_score_missing"] == ("satisfaction_score",)
    one_hot = [n for n in names if n.startswith("acquisition_channel=")]
    assert one_hot and all(by_name[n] == ("acquisition_channel",) for n in one_hot)
    explainer = Explainer(models["xgboost"])
    # Each feature's row of the roll-up sums to one: contributions are moved, never made or lost.
    np.testing.assert_allclose(explainer.rollup.sum(axis=1), 1.0)
    assert "snapshot_date" not in explainer.attributes
    assert not any("=" in a or a.startswith("rfm_") for a in explainer.attributes)


def test_top_reasons_are_the_largest_by_absolute_value_with_sign() -> None:
    from churn.scoring.reasons import Contributions

    values = np.asarray([[0.1, -0.9, 0.3, 0.0, 0.5], [0.0, 0.0, -0.2, 0.7, -0.1]])
    top = top_reasons(Contributions(values, 0.0, LOG_ODDS, ("a", "b", "c", "d", "e")))
    assert top.names().tolist() == [["b", "e", "c"], ["d", "c", "e"]]
    np.testing.assert_array_equal(top.contribution, [[-0.9, 0.5, 0.3], [0.7, -0.2, -0.1]])


def test_agreement_counts_rows_whose_reasons_match() -> None:
    from churn.scoring.reasons import Contributions

    names = ("a", "b", "c", "d", "e")
    reference = top_reasons(Contributions(np.asarray([[0.9, 0.5, 0.3, 0, 0]] * 4), 0.0, LOG_ODDS, names))
    other = top_reasons(
        Contributions(
            np.asarray(
                [
                    [0.9, 0.5, 0.3, 0, 0],  # same reasons, same order
                    [0.4, 0.5, 0.3, 0, 0],  # same set, another first
                    [0.9, 0.5, 0, 0.3, 0],  # same first, one other attribute
                    [0, 0, 0.3, 0.6, 0.9],  # one shared
                ]
            ),
            0.0,
            LOG_ODDS,
            names,
        )
    )
    assert agreement(reference, reference) == {"top1": 1.0, "top_set": 1.0, "ordered": 1.0, "overlap": 1.0}
    found = agreement(reference, other)
    assert found == {"top1": 0.5, "top_set": 0.5, "ordered": 0.25, "overlap": pytest.approx((3 + 3 + 2 + 1) / 12)}
    flipped = top_reasons(Contributions(np.asarray([[-0.9, 0.5, 0.3, 0, 0]] * 4), 0.0, LOG_ODDS, names))
    assert agreement(reference, flipped)["ordered"] == 0.0  # a reason with the other sign is another reason
    with pytest.raises(ChurnError, match="same rows"):
        agreement(reference, top_reasons(Contributions(np.ones((2, 5)), 0.0, LOG_ODDS, names)))


def test_a_reason_reads_as_what_the_customer_did(models: dict[str, ChurnModel]) -> None:
    assert (
        render("days_since_last_purchase", 121.0, 0.8412, LOG_ODDS)
        == "days_since_last_purchase = 121 → +0.84 log-odds (raises risk)"
    )
    assert render("membership_tier", "gold", -0.31, LOG_ODDS) == "membership_tier = gold → -0.31 log-odds (lowers risk)"
    assert render("email_open_rate", float("nan"), 0.05, PROBABILITY).startswith("email_open_rate = missing → +0.050")
    model = models["logistic_regression"]
    raw = generate_customers(5, "2026-02-01", seed=4).frame
    top = Explainer(model).top(model.features.transform(raw))
    records = reason_records(top, to_columns(raw))
    assert len(records) == 5 and all(len(r) == 3 for r in records)
    first = records[0][0]
    assert first["text"].startswith(f"{first['attribute']} = {first['value']} → ")
    assert first["value"] == format_value(to_columns(raw)[first["attribute"]][0])
    assert format_value(121.0) == "121" and format_value(0.35) == "0.35" and format_value(1234.56789) == "1234.5679"
    assert format_value(np.datetime64("2024-03-01")) == "2024-03-01" and format_value(np.nan) == "missing"


def test_a_pipeline_without_training_means_measures_from_zero(models: dict[str, ChurnModel]) -> None:
    """Pipelines pickled before ``matrix_means_`` existed still explain (and still add up)."""
    model = models["logistic_regression"]
    features = FeaturePipeline.__new__(FeaturePipeline)
    features.__dict__.update({k: v for k, v in model.features.__dict__.items() if k != "matrix_means_"})
    old = ChurnModel(model.family, features, model.estimator, model.threshold)
    raw = generate_customers(50, "2026-02-01", seed=5).frame
    explainer = Explainer(old)
    matrix = features.transform(raw)
    found = explainer.contributions(matrix)
    np.testing.assert_allclose(found.values.sum(axis=1) + found.bias, explainer.output(matrix), atol=1e-9)


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_path_attribution_of_the_boosters_adds_up_too(
    family: str, models: dict[str, ChurnModel], parts: dict[str, pd.DataFrame]
) -> None:
    model = models[family]
    matrix = model.features.transform(parts["test"])
    path = Explainer(model, PATH)
    found = path.contributions(matrix)
    tolerance = {"rtol": 1e-6, "atol": 1e-6} if family == "xgboost" else {"rtol": 0, "atol": 1e-6}
    np.testing.assert_allclose(found.values.sum(axis=1) + found.bias, path.output(matrix), **tolerance)
    # A different decomposition from TreeSHAP's, of the same margin.
    shapley = Explainer(model).contributions(matrix)
    assert np.abs(found.values - shapley.values).max() > 1e-3
    with pytest.raises(ChurnError, match="unknown reasons method"):
        Explainer(model, "lime")


def test_one_value_is_written_as_the_batch_writes_it() -> None:
    """Online reasons format one value at a time, the scored table a column at a time: the same text."""
    from churn.scoring.reasons import format_values

    rng = np.random.default_rng(0)
    values = np.concatenate(
        [rng.random(20_000) * 10.0 ** rng.integers(-6, 18, 20_000), [0.0, -0.0, 0.00005, 1e15, np.nan, 121.0]]
    )
    assert [format_value(v) for v in values] == format_values(values).tolist()


@pytest.mark.parametrize("method", ["shap", PATH])
@pytest.mark.parametrize("family", FAMILIES)
def test_one_row_alone_gets_the_contributions_it_gets_in_a_batch(
    family: str, method: str, models: dict[str, ChurnModel], parts: dict[str, pd.DataFrame]
) -> None:
    """Requests explain a few rows (the forest and LightGBM's path take a per-row route there), batches many."""
    model = models[family]
    explainer = Explainer(model, method)
    matrix = model.features.transform(parts["test"].head(100))
    batch = explainer.contributions(matrix).values
    for i in (0, 41, 99):
        np.testing.assert_allclose(explainer.contributions(matrix[i : i + 1]).values[0], batch[i], rtol=0, atol=1e-9)


def test_lightgbm_path_in_chunks_equals_one_pass(
    models: dict[str, ChurnModel], parts: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    import churn.scoring.reasons as reasons

    model = models["lightgbm"]
    matrix = model.features.transform(parts["test"].head(500))
    explainer = Explainer(model, PATH)
    whole = explainer.contributions(matrix).values
    monkeypatch.setattr(reasons, "LEAF_CHUNK_ROWS", 70)  # 7 full chunks and a short one
    np.testing.assert_allclose(explainer.contributions(matrix).values, whole, rtol=0, atol=1e-12)
