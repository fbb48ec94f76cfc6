"""The deploy tests' shared registry: a real MLflow store with a rollout's two versions (tests/rollout_registry.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout_registry import copy_registry, make_registry


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rollout-registry")
    make_registry(root)
    return root


@pytest.fixture
def registry(registry_template: Path, tmp_path: Path) -> str:
    """A fresh copy of the registry for one test (it moves aliases and sets tags), MLflow pointed at it."""
    return copy_registry(registry_template, tmp_path)
