"""The service's metrics: batch observation gives exactly what observing value by value gives."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from churn.serving.metrics import PROBABILITY, observe_all

pytestmark = pytest.mark.unit


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    return {f"{s.name}{sorted(s.labels.items())}": s.value for m in registry.collect() for s in m.samples}


@pytest.mark.parametrize("n", [3, 1_000])
def test_observe_all_equals_one_observe_per_value(n: int) -> None:
    values = np.random.default_rng(n).random(n)
    values[:3] = [0.05, 0.1, 1.0]  # values on bucket bounds land in that bucket (le = "less or equal")
    one, many = CollectorRegistry(), CollectorRegistry()
    buckets = PROBABILITY._upper_bounds[:-1]
    by_value = Histogram("p", "x", buckets=buckets, registry=one)
    at_once = Histogram("p", "x", buckets=buckets, registry=many)
    for value in values:
        by_value.observe(float(value))
    observe_all(at_once, values)
    expected, got = _samples(one), _samples(many)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if not key.startswith("p_created"):
            assert got[key] == pytest.approx(value), key
