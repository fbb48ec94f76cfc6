"""Correctness of the drift decision on the generator's named scenarios, over 20 seeds each.

The reference is 20,000 customers of one day; each current sample is 5,000 customers of
the next day with the scenario applied. With the default thresholds:

- ``none``: at most 1 of 20 runs may end in "alert" (a false alarm);
- every other scenario: at least 19 of 20 runs end in "alert" *because of feature drift*
  (not only because the churn rate moved), and the features flagged at alert level are
  always among the columns the scenario moved.

Not every moved column must be flagged: ``price_shock`` thins orders by 20% and raises
order values by 20%, so ``total_spend`` (their product) barely moves and ``total_orders``
moves only a little (PSI ~0.03); the test asserts what the scenario really changes.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from churn.data import SCENARIOS, generate_customers
from churn.monitoring.checks import check_drift
from churn.monitoring.reference import ReferenceProfile, fit_reference

pytestmark = pytest.mark.unit

SEEDS = range(20)
REFERENCE_ROWS = 20_000
CURRENT_ROWS = 5_000


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    generated = generate_customers(REFERENCE_ROWS, "2026-01-05", seed=1)
    return fit_reference(generated.frame, generated.true_probability, roc_auc=0.80)


def current(scenario: str, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    generated = generate_customers(CURRENT_ROWS, "2026-01-06", seed=1_000 + seed, scenario=scenario)
    return generated.frame, generated.true_probability


def test_no_drift_raises_at_most_one_false_alarm(profile: ReferenceProfile) -> None:
    verdicts: Counter[str] = Counter()
    flagged: Counter[str] = Counter()
    for seed in SEEDS:
        report = check_drift(profile, *current("none", seed))
        verdicts[report.verdict] += 1
        flagged.update(report.flagged)
    assert verdicts["alert"] <= 1, (verdicts, flagged)


@pytest.mark.parametrize("scenario", [name for name in SCENARIOS if name != "none"])
def test_each_scenario_is_detected_on_the_columns_it_moved(profile: ReferenceProfile, scenario: str) -> None:
    moved = set(SCENARIOS[scenario].moved_columns)
    detected = 0
    strays: Counter[str] = Counter()
    for seed in SEEDS:
        report = check_drift(profile, *current(scenario, seed))
        flagged = set(report.flagged)
        strays.update(flagged - moved)
        if report.verdict == "alert" and report.levels["feature_drift"] == "alert":
            detected += 1
    assert detected >= 19, f"{scenario}: detected in {detected}/20 runs"
    assert not strays, f"{scenario}: flagged columns it did not move: {dict(strays)}"


@pytest.mark.parametrize(
    ("scenario", "clearly_moved"),
    [
        ("price_shock", {"discount_usage_rate", "cart_abandonment_rate"}),
        ("channel_shift", {"acquisition_channel"}),
        (
            "engagement_decline",
            {"sessions_last_30d", "app_usage_minutes_30d", "email_open_rate", "days_since_last_purchase"},
        ),
        ("service_outage", {"support_tickets_90d", "satisfaction_score"}),
    ],
)
def test_the_clearly_moved_columns_are_never_missed(
    profile: ReferenceProfile, scenario: str, clearly_moved: set[str]
) -> None:
    """Each of these columns is at "warn" or "alert" in every run (app usage, halved, sits near PSI 0.2)."""
    for seed in SEEDS:
        report = check_drift(profile, *current(scenario, seed))
        assert clearly_moved <= {*report.flagged, *report.warned}, (seed, report.flagged, report.warned)
