"""manifests/: the chart rendered as plain YAML for `kubectl apply -k`, kept in step with the chart."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_chart import ROOT, validate

pytestmark = pytest.mark.deploy
KUBECTL = ROOT / ".tools" / "k8s" / "kubectl"


def _render_script() -> Any:
    spec = importlib.util.spec_from_file_location("render_manifests", ROOT / "scripts" / "render_manifests.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_manifests_are_the_current_rendering_of_the_chart(helm: str) -> None:
    script = _render_script()
    wanted = script.files(script.rendered(helm))
    base = ROOT / "manifests" / "base"
    committed = {p.name: p.read_text() for p in base.glob("*.yaml")}
    stale = sorted(name for name in set(wanted) | set(committed) if wanted.get(name) != committed.get(name))
    assert not stale, f"manifests/base is stale ({stale}): run scripts/render_manifests.py"


def test_overlay_builds_with_kustomize_and_validates(helm: str) -> None:
    built = subprocess.run(
        [str(KUBECTL), "kustomize", str(ROOT / "manifests" / "overlays" / "example")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(built) if doc]
    assert {o["kind"] for o in objects} >= {"Namespace", "InferenceService", "ServingRuntime", "StatefulSet"}
    assert all(o["metadata"].get("namespace") == "churn-mlops" for o in objects if o["kind"] != "Namespace")
    assert list(validate(objects)) == []


def test_manifest_files_say_they_are_generated() -> None:
    for path in (ROOT / "manifests" / "base").glob("*.yaml"):
        assert path.read_text().startswith("# Rendered from helm/churn-mlops"), path
    assert Path(ROOT / "manifests" / "overlays" / "example" / "kustomization.yaml").is_file()
