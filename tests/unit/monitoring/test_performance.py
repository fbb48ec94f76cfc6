"""Performance monitoring on the generator's data with a real trained model: realized metrics, CBPE, levels.

The model is a small XGBoost trained on 7,000 generated customers; each cohort is a
generated day scored by it, with the day's outcomes as the labels that "arrived". The
first (5,000-row) cohort is the reference period the CBPE calibrator is fitted on.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, precision_score, recall_score, roc_auc_score

from churn.data import generate_customers
from churn.monitoring.cbpe import Calibrator, cbpe, fit_calibrator
from churn.monitoring.checks import check_drift
from churn.monitoring.cohorts import evaluate_cohorts, join_labels
from churn.monitoring.realized import realized_metrics
from churn.monitoring.reference import fit_reference
from churn.training import split_frame, train_family
from churn.training.models import ChurnModel

pytestmark = pytest.mark.unit
AS_OF = dt.date(2026, 3, 1)


@pytest.fixture(scope="module")
def trained() -> tuple[ChurnModel, pd.DataFrame, float]:
    parts = split_frame(generate_customers(10_000, "2026-01-05", seed=21).frame, seed=3)
    params = {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.1, "early_stopping_rounds": 20}
    model = train_family("xgboost", parts["train"], parts["validation"], params)
    test_auc = float(roc_auc_score(parts["test"]["churned"], model.predict_proba(parts["test"])))
    return model, parts["train"], test_auc


def scored(
    model: ChurnModel, day: str, scenario: str, seed: int, rows: int = 2_000, version: str = "1"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(prediction-log rows, labels) of one generated day scored by ``model``, logged as registry ``version``."""
    frame = generate_customers(rows, day, seed=seed, scenario=scenario).frame
    p = model.predict_proba(frame)
    log = pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "scored_at": pd.Timestamp(day, tz="UTC"),
            "churn_probability": p,
            "churn_label": (p >= model.threshold).astype(np.int8),
            "model_version": version,
            "date": dt.date.fromisoformat(day),
        }
    )
    return log, pd.DataFrame({"customer_id": frame["customer_id"], "churned": frame["churned"]})


def run(model: ChurnModel, test_auc: float, days: list[tuple[str, str, int]], **kwargs):
    parts = [
        scored(model, day, scenario, seed, 5_000 if i == 0 else 2_000) for i, (day, scenario, seed) in enumerate(days)
    ]
    return evaluate_cohorts(
        pd.concat([p for p, _ in parts]),
        pd.concat([y for _, y in parts]),
        as_of=kwargs.pop("as_of", AS_OF),
        threshold=model.threshold,
        reference_roc_auc=test_auc,
        reference_roc_auc_standard_error=0.008,
        **kwargs,
    )


def test_realized_metrics_equal_scikit_learns() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(3_000)
    y = (rng.random(3_000) < p).astype(int)
    predicted = (p >= 0.6).astype(int)
    m = realized_metrics(y, p, predicted)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert m["precision"] == pytest.approx(precision_score(y, predicted))
    assert m["recall"] == pytest.approx(recall_score(y, predicted))
    top = np.argsort(-p)[:300]
    assert m["lift_top_decile"] == pytest.approx(y[top].mean() / y.mean())
    assert m["ece"] < 0.03  # labels drawn from p: calibrated up to sampling noise
    skewed = realized_metrics(y, p**3, predicted)  # the same ranking, badly calibrated
    assert skewed["roc_auc"] == pytest.approx(m["roc_auc"]) and skewed["ece"] > 0.15


def test_cbpe_on_calibrated_probabilities_matches_the_truth_and_its_spread() -> None:
    generated = generate_customers(4_000, "2026-01-06", seed=8)
    p, y = generated.true_probability, generated.frame["churned"].to_numpy()
    estimate = cbpe(p, 0.5, Calibrator.identity())
    realized = roc_auc_score(y, p)
    assert abs(estimate["roc_auc"] - realized) <= 2 * estimate["roc_auc_standard_error"]
    hanley = realized_metrics(y, p, (p >= 0.5).astype(int))["roc_auc_standard_error"]
    assert 0.7 < estimate["roc_auc_standard_error"] / hanley < 1.4
    assert estimate["churn_rate"] == pytest.approx(p.mean())
    assert estimate["recall"] == pytest.approx(p[p >= 0.5].sum() / p.sum())


def test_on_unchanged_data_estimated_and_realized_roc_auc_agree_within_their_standard_error(trained) -> None:
    model, _, test_auc = trained
    report = run(model, test_auc, [(f"2026-01-{6 + i:02d}", "none", 100 + i) for i in range(5)], reference_cohorts=1)
    assert report.calibration == "version 1: 5000 labelled predictions of the cohorts 2026-01-06..2026-01-06"
    gaps = []
    for cohort in report.cohorts[1:]:  # the first is the calibration period
        e, r = cohort.estimated, cohort.realized
        assert e is not None and r is not None
        combined = math.hypot(e.roc_auc_standard_error, r.roc_auc_standard_error)
        assert abs(e.roc_auc - r.roc_auc) <= 2 * combined, cohort
        gaps.append(abs(e.roc_auc - r.roc_auc) / combined)
        assert e.level == r.level == "ok"
    assert np.mean(gaps) <= 1.0, gaps  # on average within one standard error
    assert report.verdict == "ok"


def test_under_covariate_drift_the_estimate_moves_with_the_realized_roc_auc(trained) -> None:
    model, _, test_auc = trained
    days = [("2026-01-06", "none", 100), ("2026-01-07", "none", 101), ("2026-01-08", "engagement_decline", 102)]
    report = run(model, test_auc, days, reference_cohorts=1)
    clean, drifted = report.cohorts[1], report.cohorts[2]
    assert clean.estimated and drifted.estimated and drifted.realized
    moved = clean.estimated.roc_auc - drifted.estimated.roc_auc
    assert moved > math.hypot(clean.estimated.roc_auc_standard_error, drifted.estimated.roc_auc_standard_error)
    assert clean.estimated.level == "ok" and drifted.estimated.level != "ok"
    assert drifted.realized.roc_auc < clean.estimated.roc_auc  # the realized number fell too
    assert drifted.estimated.churn_rate > clean.estimated.churn_rate + 0.03  # and CBPE sees more churners


def test_concept_drift_is_invisible_to_input_drift_and_the_estimate_but_realized_performance_alerts(trained) -> None:
    model, train, test_auc = trained
    profile = fit_reference(train, model.predict_proba(train), roc_auc=test_auc)
    drifted = generate_customers(2_000, "2026-01-08", seed=102, scenario="concept_drift").frame
    inputs_only = check_drift(profile, drifted.drop(columns="churned"), model.predict_proba(drifted))
    assert inputs_only.levels["feature_drift"] == "ok" and inputs_only.levels["prediction_drift"] == "ok"
    assert inputs_only.verdict == "ok"

    days = [("2026-01-06", "none", 100), ("2026-01-07", "none", 101), ("2026-01-08", "concept_drift", 102)]
    # Before the labels arrive (as of the day after scoring, 30-day delay): only the estimate, and it sees nothing.
    early = run(model, test_auc, days, as_of=dt.date(2026, 1, 9), reference_cohorts=1)
    late = run(model, test_auc, days, reference_cohorts=1)
    concept = late.cohorts[2]
    assert concept.estimated and concept.estimated.level == "ok"
    assert concept.realized and concept.realized.level == "alert"
    assert test_auc - concept.realized.roc_auc > 0.2
    assert late.levels == {"realized": "alert", "estimated": "ok", "labels": "ok"}
    assert early.cohorts[2].estimated and early.cohorts[2].estimated.level == "ok"


def test_labels_arrive_after_the_delay_and_are_overdue_after_the_grace(trained) -> None:
    model, _, test_auc = trained
    log, labels = scored(model, "2026-01-06", "none", 5)
    on_time = evaluate_cohorts(
        log, labels.iloc[:0], as_of=dt.date(2026, 2, 5), threshold=model.threshold, reference_roc_auc=test_auc
    )
    assert on_time.cohorts[0].realized is None and not on_time.cohorts[0].labels_overdue
    assert on_time.cohorts[0].labels_due == dt.date(2026, 2, 5) and on_time.levels["labels"] == "ok"
    assert on_time.calibration.startswith("version 1: nothing")
    late = evaluate_cohorts(
        log, labels.iloc[:0], as_of=dt.date(2026, 2, 9), threshold=model.threshold, reference_roc_auc=test_auc
    )
    assert late.cohorts[0].labels_overdue and late.levels["labels"] == "alert" and late.verdict == "alert"
    assert "OVERDUE" in late.lines()[0]


def test_a_customer_scored_twice_a_day_counts_once_and_unknown_customers_still_count_as_scored() -> None:
    day = dt.date(2026, 1, 6)
    log = pd.DataFrame(
        {
            "customer_id": ["A", "A", None, "B"],
            "scored_at": pd.to_datetime(
                ["2026-01-06 01:00", "2026-01-06 02:00", "2026-01-06 03:00", "2026-01-06 04:00"], utc=True
            ),
            "churn_probability": [0.1, 0.8, 0.5, 0.3],
            "churn_label": [0, 1, 0, 0],
            "model_version": "1",
            "date": day,
        }
    )
    joined = join_labels(log, pd.DataFrame({"customer_id": ["A"], "churned": [1]}))
    assert len(joined) == 3
    assert joined.loc[joined["customer_id"] == "A", "churn_probability"].tolist() == [0.8]
    assert joined["churned"].notna().sum() == 1
    calibrator, what = fit_calibrator(joined)
    assert what.startswith("nothing") and calibrator(np.array([0.3]))[0] == pytest.approx(0.3)


def test_a_cohort_that_cannot_be_estimated_is_noted_and_the_others_still_are(trained) -> None:
    model, _, test_auc = trained
    log, labels = scored(model, "2026-01-06", "none", 5)
    never = Calibrator(np.array([0.0, 1.0]), np.array([0.0, 0.0]))  # "nobody churns": no expected positives
    report = evaluate_cohorts(
        log, labels, as_of=AS_OF, threshold=model.threshold, reference_roc_auc=test_auc, calibrator=never
    )
    (cohort,) = report.cohorts
    assert cohort.estimated is None and cohort.realized is not None
    assert any("no estimate" in note for note in report.notes)


def test_each_model_version_is_judged_on_its_own_cohorts_with_its_own_calibrator(trained) -> None:
    """A day on which a new version took over is two cohorts; the old version's concept drift is its own alert."""
    model, _, test_auc = trained
    reference, reference_labels = scored(model, "2026-01-06", "none", 11, rows=5_000, version="1")
    old, old_labels = scored(model, "2026-01-07", "concept_drift", 12, version="1")
    new, new_labels = scored(model, "2026-01-07", "none", 13, version="2")
    for frame in (new, new_labels):  # other customers than version 1's that day (the generator's ids are per day)
        frame["customer_id"] = "new-" + frame["customer_id"]
    report = evaluate_cohorts(
        pd.concat([reference, old, new]),
        pd.concat([reference_labels, old_labels, new_labels]),
        as_of=AS_OF,
        threshold=model.threshold,
        reference_roc_auc=test_auc,
        reference_roc_auc_standard_error=0.008,
    )
    assert [(c.cohort.isoformat(), c.model_version, c.scored) for c in report.cohorts] == [
        ("2026-01-06", "1", 5_000),
        ("2026-01-07", "1", 2_000),
        ("2026-01-07", "2", 2_000),
    ]
    # Each version's calibrator comes from its own oldest labelled cohorts, not the other's.
    assert report.calibration == (
        "version 1: 7000 labelled predictions of the cohorts 2026-01-06..2026-01-07; "
        "version 2: 2000 labelled predictions of the cohorts 2026-01-07..2026-01-07"
    )
    by_version = report.levels_by_version
    assert by_version["1"]["realized"] == "alert" and by_version["2"]["realized"] == "ok"
    assert report.levels["realized"] == "alert"  # the report as a whole still shows the old version's drop
    assert report.to_dict()["levels_by_version"] == by_version
    assert "| 2026-01-07 | 2 | 2000 |" in report.markdown() and " v2 " in report.lines()[-1]
