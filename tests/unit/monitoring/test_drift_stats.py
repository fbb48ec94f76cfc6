"""The statistics behind the drift checks, against hand-computed numbers, scipy and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2, chi2_contingency
from scipy.stats.contingency import association
from sklearn.metrics import roc_auc_score

from churn.monitoring.stats import (
    bin_counts,
    chi_square,
    cramers_v,
    psi,
    psi_p_value,
    quantile_edges,
    roc_auc,
    roc_auc_standard_error,
)

pytestmark = pytest.mark.unit


def test_psi_matches_a_hand_computed_value() -> None:
    reference = np.array([0.5, 0.5])
    current = np.array([0.25, 0.75])
    # (0.25 - 0.5) ln(0.5) + (0.75 - 0.5) ln(1.5) = 0.25 (ln 2 + ln 1.5) = 0.25 ln 3
    assert psi(reference, current) == pytest.approx(0.25 * math.log(3.0), abs=1e-12)
    assert psi(reference, reference) == 0.0
    assert psi(current, reference) == pytest.approx(psi(reference, current))  # symmetric


def test_psi_floors_empty_bins_at_epsilon() -> None:
    reference = np.array([0.9, 0.1, 0.0])  # the last bin, e.g. missing values, never seen in the reference
    current = np.array([0.9, 0.0, 0.1])
    eps = 1e-4
    expected = (eps - 0.1) * math.log(eps / 0.1) + (0.1 - eps) * math.log(0.1 / eps)
    assert psi(reference, current, eps) == pytest.approx(expected)
    assert math.isfinite(psi(reference, current, eps))
    assert psi(reference, current, 1e-3) < psi(reference, current, 1e-4)  # a larger floor caps it lower


def test_quantile_edges_are_data_values_and_discrete_columns_get_one_bin_per_value() -> None:
    rng = np.random.default_rng(0)
    continuous = rng.normal(size=10_000)
    edges = quantile_edges(continuous, 10)
    assert edges.size == 9
    assert np.isin(edges, continuous).all()
    proportions = bin_counts(continuous, edges)[:-1] / continuous.size
    np.testing.assert_allclose(proportions, 0.1, atol=1e-3)

    score = rng.integers(1, 6, size=10_000).astype(float)  # a 1-5 score: ties everywhere
    edges = quantile_edges(score, 10)
    np.testing.assert_array_equal(edges, [1, 2, 3, 4])  # 5 is the maximum: no empty bin above it
    counts = bin_counts(score, edges)
    assert (counts[:-1] > 0).all()
    np.testing.assert_array_equal(counts[:-1], np.bincount(score.astype(int))[1:])

    mostly_zero = np.where(rng.random(10_000) < 0.85, 0.0, rng.integers(1, 4, 10_000))
    edges = quantile_edges(mostly_zero, 10)
    assert edges[0] == 0.0
    assert (bin_counts(mostly_zero, edges)[:-1] > 0).all()


def test_quantile_edges_of_constant_or_empty_columns() -> None:
    assert quantile_edges(np.full(100, 3.0), 10).size == 0
    assert quantile_edges(np.full(10, np.nan), 10).size == 0
    np.testing.assert_array_equal(bin_counts(np.array([1.0, np.nan, 5.0]), np.empty(0)), [2, 1])


def test_bin_counts_are_right_closed_with_open_ends_and_a_missing_slot() -> None:
    edges = np.array([1.0, 2.0])
    values = np.array([-100.0, 1.0, 1.5, 2.0, 2.0001, 1e9, np.nan, np.nan])
    # (-inf, 1], (1, 2], (2, inf), missing
    np.testing.assert_array_equal(bin_counts(values, edges), [2, 2, 2, 2])


def test_chi_square_matches_scipy_and_drops_empty_categories() -> None:
    reference = np.array([500, 300, 200, 0])
    current = np.array([40, 30, 50, 0])
    statistic, p_value, dof = chi_square(reference, current)
    expected = chi2_contingency(np.array([[500, 300, 200], [40, 30, 50]]), correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue)
    assert dof == 2
    # A new category (absent from the reference) is a column of the table like any other.
    statistic, _, dof = chi_square(np.array([100, 100, 0]), np.array([10, 10, 5]))
    assert statistic == pytest.approx(chi2_contingency(np.array([[100, 100, 0], [10, 10, 5]])).statistic)
    assert dof == 2
    assert chi_square(np.array([10, 0]), np.array([5, 0])) == (0.0, 1.0, 0)


def test_cramers_v_is_scipys_on_equally_weighted_samples() -> None:
    reference = np.array([0.5, 0.3, 0.2])
    current = np.array([0.2, 0.3, 0.5])
    table = np.rint(np.vstack([reference, current]) * 1_000_000).astype(np.int64)
    assert cramers_v(reference, current) == pytest.approx(association(table, method="cramer"), rel=1e-9)
    # Hand check: sqrt(((0.3^2)/0.7 + 0 + (0.3^2)/0.7) / 2) = sqrt(0.09 / 0.7)
    assert cramers_v(reference, current) == pytest.approx(math.sqrt(0.09 / 0.7))
    assert cramers_v(reference, reference) == 0.0
    assert cramers_v(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)


def test_cramers_v_does_not_depend_on_sample_sizes_but_the_contingency_one_does() -> None:
    reference = np.array([0.6, 0.4])
    current = np.array([0.5, 0.5])
    small = np.rint(np.vstack([reference * 1_000, current * 1_000])).astype(np.int64)
    lopsided = np.rint(np.vstack([reference * 100_000, current * 1_000])).astype(np.int64)
    assert association(lopsided, method="cramer") < 0.5 * association(small, method="cramer")
    assert cramers_v(reference, current) == pytest.approx(association(small, method="cramer"))


def test_psi_p_value_is_the_scaled_chi_square_tail() -> None:
    value, n_ref, n_cur, bins = 0.01, 100_000, 5_000, 11
    scaled = value / (1 / n_ref + 1 / n_cur)
    assert psi_p_value(value, n_ref, n_cur, bins) == pytest.approx(chi2.sf(scaled, bins - 1))
    assert psi_p_value(0.15, 100_000, 50, 11) > 0.01  # a large PSI on 50 rows is noise
    assert psi_p_value(0.15, 100_000, 5_000, 11) < 1e-10
    assert psi_p_value(0.5, 100, 100, 1) == 1.0


def test_psi_p_value_is_calibrated_under_no_drift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=20_000)
    edges = quantile_edges(reference, 10)
    ref_p = bin_counts(reference, edges) / reference.size
    p_values = []
    for _ in range(300):
        current = rng.normal(size=2_000)
        counts = bin_counts(current, edges)
        p_values.append(psi_p_value(psi(ref_p, counts / counts.sum()), reference.size, current.size, 10))
    assert 0.0 <= np.mean(np.array(p_values) < 0.05) <= 0.10  # close to the nominal 5%


def test_roc_auc_matches_sklearn_with_ties_and_its_standard_error_is_sane() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 2_000)
    scores = np.round(rng.random(2_000) * 0.5 + 0.3 * y, 2)  # rounded: many ties
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    se = roc_auc_standard_error(0.8, 250, 750)
    assert 0.01 < se < 0.03
    assert roc_auc_standard_error(0.8, 2_500, 7_500) < se
