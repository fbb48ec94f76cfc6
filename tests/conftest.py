from __future__ import annotations

import os

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

from churn.data import generate_customers

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def raw_frame() -> pd.DataFrame:
    """20,000 undrifted customers, shared read-only by tests that only look at data."""
    return generate_customers(20_000, "2026-01-05", seed=11).frame
