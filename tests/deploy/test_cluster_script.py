"""scripts/cluster_e2e.sh, the real-cluster walk-through, checked without a cluster.

There is no cluster or container engine here, so the script runs with DRY_RUN=1: it prints
each command instead of running it. The tests check the order of the steps, that the Helm
values it sets render and validate, and that every `churn` command line it runs parses.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_chart import render, validate

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cluster_e2e.sh"


def _dry_run(**env: str) -> list[list[str]]:
    done = subprocess.run(
        ["bash", str(SCRIPT)], env={**os.environ, "DRY_RUN": "1", **env}, capture_output=True, text=True, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    return [shlex.split(line[2:].rstrip(" &")) for line in done.stdout.splitlines() if line.startswith("+ ")]


def test_the_steps_come_in_an_order_that_works() -> None:
    commands = _dry_run()
    joined = [" ".join(c) for c in commands]

    def first(fragment: str) -> int:
        return next(i for i, line in enumerate(joined) if fragment in line)

    order = [
        "scripts/install_helm.sh",
        "get crd inferenceservices.serving.kserve.io",
        "helm upgrade --install churn helm/churn-mlops",
        "port-forward svc/ml-pipeline",
        "pipeline submit training",
        "wait --for=condition=Ready inferenceservice/churn-model",
        "port-forward svc/churn-model-transformer 18080:80",
        "predict --url http://127.0.0.1:18080",
        "helm test churn",
        "pipeline submit data",
        "pipeline submit monitoring",
        "churn schedule",
    ]
    positions = [first(fragment) for fragment in order]
    assert positions == sorted(positions), list(zip(order, positions, strict=True))
    assert not [line for line in joined if "kind load" in line]  # only with KIND_CLUSTER


def test_the_helm_values_it_sets_render_and_validate(helm: str) -> None:
    commands = _dry_run(NAMESPACE="ml", RELEASE="prod", KFP_NAMESPACE="pipelines")
    (install,) = [c for c in commands if c[:3] == ["helm", "upgrade", "--install"]]
    sets = [arg for i, arg in enumerate(install) if install[i - 1] == "--set"]
    assert "serving.enabled=false" in sets and "pipelines.namespace=pipelines" in sets
    assert install[install.index("--namespace") + 1] == "ml" and install[3] == "prod"
    args = [part for value in sets for part in ("--set", value)]
    objects = render(helm, *args, "--set", "s3.secretKey=from-the-values-file", release="prod")
    assert list(validate(objects)) == []
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] == "ConfigMap"} >= {"pipelines"}


def test_a_kind_cluster_gets_the_images_and_another_registry_recompiles() -> None:
    commands = _dry_run(KIND_CLUSTER="dev", CHURN_IMAGE_REGISTRY="registry.example.com/ml")
    loads = [c for c in commands if c[:3] == ["kind", "load", "docker-image"]]
    names = sorted(c[3].rsplit("/", 1)[1].split(":")[0] for c in loads)
    assert names == ["churn", "churn-serving", "mlflow"] and all(c[-2:] == ["--name", "dev"] for c in loads)
    assert ["env", "CHURN_IMAGE_REGISTRY=registry.example.com/ml", ".venv/bin/churn", "pipeline", "compile"] in commands


def test_every_churn_command_it_runs_parses() -> None:
    commands = [c for c in _dry_run() if c[0] == ".venv/bin/churn"]
    assert len(commands) == 5
    for command in commands:
        # --help is eager, yet an unknown option or a missing argument still fails the parse first.
        done = subprocess.run(
            [sys.executable, "-m", "churn", *command[1:], "--help"], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, (command, done.stderr)
    bad = subprocess.run(
        [sys.executable, "-m", "churn", "pipeline", "submit", "training", "--no-such-option", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0  # the check above can fail
