"""The repository is self-contained: no test, script or build step reads outside the clone.

A user's fresh clone has nothing beside it; an earlier version read CRD schemas from
``../shared`` and failed 7 tests there. What the tests need from upstream is vendored in
tests/vendor with its source and version.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "tests" / "vendor"
# Ways a file could reach the folder that holds the clone: a relative path out of it,
# the workspace's shared folder, or a path built from the repository root's parent.
OUTSIDE = re.compile(r"\.\./shared|/work/shared|ROOT\.parent\b|parents\[\d+\]\s*/\s*[\"']shared")


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    suffixes = {".py", ".sh", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".tpl", ""}
    files = [ROOT / line for line in listed.splitlines() if not line.startswith("tests/vendor/")]
    return [p for p in files if p.is_file() and (p.suffix in suffixes or p.name in {"Makefile", "Dockerfile"})]


def test_no_file_reads_outside_the_repository() -> None:
    offenders = []
    for path in _tracked_text_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line) and path != Path(__file__):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "reads outside the clone:\n" + "\n".join(offenders)


def test_vendored_files_are_complete_and_named() -> None:
    readme = (VENDOR / "README.md").read_text()
    kinds = set()
    for path in (VENDOR / "crds").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in ("CustomResourceDefinition", "ClusterServingRuntime"):
                kinds.add(doc["spec"].get("names", {}).get("kind", doc["kind"]))
    assert {"InferenceService", "ServingRuntime", "ClusterServingRuntime", "ServiceMonitor", "PodMonitor"} <= kinds
    assert "PrometheusRule" in kinds
    spec = yaml.safe_load((VENDOR / "specs" / "open-inference-protocol-rest.yaml").read_text())
    assert spec["openapi"].startswith("3") and any("/infer" in p for p in spec["paths"])
    for folder in ("crds", "specs"):
        assert f"`{folder}/`" in readme, f"tests/vendor/README.md must name the source of {folder}/"
        assert (VENDOR / folder / "README.md").is_file()
