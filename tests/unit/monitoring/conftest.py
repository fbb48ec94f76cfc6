from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from churn.data import generate_customers
from churn.monitoring.reference import ReferenceProfile, fit_reference


@pytest.fixture(scope="session")
def reference() -> tuple[pd.DataFrame, np.ndarray]:
    """20,000 undrifted customers and their true churn probabilities (read-only)."""
    generated = generate_customers(20_000, "2026-01-05", seed=5)
    return generated.frame, generated.true_probability


@pytest.fixture(scope="session")
def profile(reference: tuple[pd.DataFrame, np.ndarray]) -> ReferenceProfile:
    """The reference profile of ``reference``, with the true probabilities as the model's scores."""
    frame, probability = reference
    return fit_reference(frame, probability, roc_auc=0.80)


@pytest.fixture
def closed_gateway() -> str:
    """An http:// URL on loopback where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
