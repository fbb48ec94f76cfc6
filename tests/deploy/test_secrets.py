"""No credential with a known value: the chart generates the S3 pair, keeps it on upgrade, commits none.

What helm can show without a cluster: the rendered Secrets hold random credentials that no
file of the chart contains and that differ between two installs; `existingSecret` renders
no Secret; the manifests committed for `kubectl apply -k` hold no Secret at all. The
keep-on-upgrade branch is the helper ``churn.s3CredentialsFrom`` fed the Secret that
``lookup`` returns in a cluster: it is rendered here with such a Secret built by hand (helm
template's ``lookup`` always returns nothing). That ``lookup`` finds the release's Secret
during a real ``helm upgrade`` only a cluster can show.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "churn-mlops"


def _render(helm: str, chart: Path = CHART, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [helm, "template", "churn", str(chart), "--namespace", "ml", *args], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _credentials(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    secrets = [o for o in objects if o["kind"] == "Secret"]
    return [(s["stringData"]["AWS_ACCESS_KEY_ID"], s["stringData"]["AWS_SECRET_ACCESS_KEY"]) for s in secrets]


def test_a_default_install_has_no_known_credential(helm: str) -> None:
    objects = _render(helm, CHART, "--set", "pipelines.namespace=kubeflow")
    pairs = _credentials(objects)
    assert len(pairs) == 2 and len(set(pairs)) == 1, "both namespaces get the one generated pair"
    access, secret = pairs[0]
    assert len(secret) >= 32 and len(access) >= 12
    chart_text = "\n".join(p.read_text() for p in CHART.rglob("*") if p.is_file())
    for value in (access, secret, "change-me-please"):
        assert value not in chart_text
    again = _credentials(_render(helm, CHART))
    assert again[0][1] != secret and again[0][0] != access, "two installs must not share credentials"


def test_given_credentials_are_used_and_an_existing_secret_renders_none(helm: str) -> None:
    given = _credentials(_render(helm, CHART, "--set", "s3.accessKey=team-a", "--set", "s3.secretKey=s"))
    assert given == [("team-a", "s")]
    assert not [o for o in _render(helm, CHART, "--set", "s3.existingSecret=mine") if o["kind"] == "Secret"]


def test_the_committed_manifests_hold_no_secret() -> None:
    for path in (ROOT / "manifests").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            assert not (doc and doc.get("kind") == "Secret"), f"{path} commits a Secret"


def test_an_upgrade_keeps_the_pair_an_install_generated(helm: str, tmp_path: Path) -> None:
    """The helper the chart feeds `lookup`'s result into, fed a Secret as a cluster would return it."""
    chart = tmp_path / "churn-mlops"
    shutil.copytree(CHART, chart)
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in (("id", "kept-id"), ("key", "kept-key-0123"))}
    (chart / "templates" / "zz-keep.yaml").write_text(
        '{{- $existing := dict "data" (dict "AWS_ACCESS_KEY_ID" "' + encoded["id"] + '" '
        '"AWS_SECRET_ACCESS_KEY" "' + encoded["key"] + '") }}\n'
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata:\n"
        '  {{- include "churn.s3CredentialsFrom" (dict "values" .Values.s3 "existing" $existing) | nindent 2 }}\n'
        "---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fresh}\ndata:\n"
        '  {{- include "churn.s3CredentialsFrom" (dict "values" .Values.s3 "existing" dict) | nindent 2 }}\n'
    )
    maps = {o["metadata"]["name"]: o["data"] for o in _render(helm, chart) if o["kind"] == "ConfigMap"}
    assert maps["keep"] == {"accessKey": "kept-id", "secretKey": "kept-key-0123"}
    assert maps["fresh"]["secretKey"] not in ("kept-key-0123", "") and len(maps["fresh"]["secretKey"]) >= 32
    # Values given on the command line win over what the cluster holds (a deliberate rotation).
    rotated = {
        o["metadata"]["name"]: o["data"]
        for o in _render(helm, chart, "--set", "s3.secretKey=rotated-key")
        if o["kind"] == "ConfigMap"
    }
    assert rotated["keep"] == {"accessKey": "kept-id", "secretKey": "rotated-key"}
    # The chart's own helper asks the cluster for the release's Secret by its name.
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace (include "churn.s3Secret" .)' in helpers
