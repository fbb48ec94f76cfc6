"""The service's metrics: batch observation gives exactly what observing value by value gives."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from churn.serving.metrics import (
    PROBABILITY,
    answered_by,
    answering_version,
    end_request,
    observe_all,
    observe_request,
    serve_version,
    start_request,
)

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


def _value(name: str, labels: dict[str, str]) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    assert value is not None, (name, labels)
    return value


def test_a_request_is_timed_under_the_version_that_answered_it() -> None:
    """In transformer mode the predictor's answer names the version; without one, the server's own counts."""
    serve_version("7")
    assert _value("churn_request_errors_total", {"model_version": "7"}) == 0.0  # created with a zero at load
    before = {v: _value("churn_request_duration_seconds_count", {"model_version": v}) for v in ("7",)}
    token = start_request()
    assert answered_by("8") == "8"  # a canary predictor behind this transformer answered
    observe_request(0.01, failed=True)
    end_request(token)
    token = start_request()
    observe_request(0.02, failed=False)  # nobody noted a version: the server's own
    end_request(token)
    assert _value("churn_request_duration_seconds_count", {"model_version": "8"}) == 1.0
    assert _value("churn_request_errors_total", {"model_version": "8"}) == 1.0
    assert _value("churn_request_duration_seconds_count", {"model_version": "7"}) == before["7"] + 1
    assert _value("churn_request_errors_total", {"model_version": "7"}) == 0.0
    assert answering_version() == "7"  # outside a request
