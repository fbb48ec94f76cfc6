"""The monitoring reference that travels inside a model directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from churn.data import generate_customers
from churn.errors import ChurnError
from churn.monitoring.reference import fit_reference
from churn.registry.mlflow_registry import load_reference
from churn.registry.model_dir import REFERENCE_FILE

pytestmark = pytest.mark.unit


def test_load_reference_reads_the_profile_from_a_model_directory(tmp_path: Path) -> None:
    generated = generate_customers(500, "2026-01-05", seed=3)
    profile = fit_reference(generated.frame, generated.true_probability, roc_auc=0.8, roc_auc_standard_error=0.01)
    (tmp_path / "extra_files").mkdir()
    (tmp_path / "extra_files" / REFERENCE_FILE).write_text(json.dumps(profile.to_dict()))
    assert load_reference(str(tmp_path)) == profile


def test_a_model_logged_without_a_reference_says_so(tmp_path: Path) -> None:
    with pytest.raises(ChurnError, match="no monitoring reference"):
        load_reference(str(tmp_path))
    (tmp_path / "extra_files").mkdir()
    (tmp_path / "extra_files" / REFERENCE_FILE).write_text('{"format_version": 99}')
    with pytest.raises(ChurnError, match="format version"):
        load_reference(str(tmp_path))
