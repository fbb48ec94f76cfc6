"""Render the Helm chart into plain manifests for `kubectl apply -k` (manifests/base), one file per kind.

The chart is the source; manifests/ is its rendering with default values for release
`churn` (helm hooks and the `helm test` pod left out), so the two cannot drift apart:
tests/deploy/test_manifests.py fails when manifests/base is stale. Run after changing
the chart:

    .venv/bin/python scripts/render_manifests.py
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "churn-mlops"
BASE = ROOT / "manifests" / "base"
HEADER = "# Rendered from helm/churn-mlops by scripts/render_manifests.py; edit the chart, not this file.\n"


def rendered(helm: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [helm, "template", "churn", str(CHART), "--namespace", "churn-mlops", "--skip-tests"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # No Secret in committed manifests: a credential in the repository is a credential everybody
    # knows. The base names the chart's Secrets, which the user creates with fresh random values
    # from the chart's own templates/secrets.yaml (see manifests/overlays/example).
    return [doc for doc in yaml.safe_load_all(out) if doc and doc["kind"] != "Secret"]


def files(objects: list[dict[str, Any]]) -> dict[str, str]:
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in objects:
        obj.get("metadata", {}).get("annotations", {}).pop("helm.sh/hook-delete-policy", None)
        by_kind[obj["kind"].lower()].append(obj)
    out = {f"{kind}.yaml": HEADER + yaml.safe_dump_all(docs, sort_keys=False) for kind, docs in sorted(by_kind.items())}
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(out),
    }
    out["kustomization.yaml"] = HEADER + yaml.safe_dump(kustomization, sort_keys=False)
    return out


def main() -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "install_helm.sh")], check=True, capture_output=True)
    wanted = files(rendered(str(ROOT / ".tools" / "k8s" / "helm")))
    BASE.mkdir(parents=True, exist_ok=True)
    for stale in set(p.name for p in BASE.glob("*.yaml")) - set(wanted):
        (BASE / stale).unlink()
    for name, text in wanted.items():
        (BASE / name).write_text(text)
    print(f"wrote {len(wanted)} files to {BASE.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
