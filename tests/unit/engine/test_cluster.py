"""Where the Dask engine's cluster comes from, and the DaskCluster manifest checked against the operator's CRD."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from distributed import Client, LocalCluster

from churn.config import DaskSettings, Settings
from churn.engine.dask.cluster import cluster_size, dask_client, make_cluster_spec
from churn.errors import ChurnError

CRDS = Path(__file__).parents[2] / "vendor" / "crds" / "dask-operator"
K8S_VERSION = "1.30"
POD_SPEC = "io.k8s.api.core.v1.PodSpec"
SERVICE_SPEC = "io.k8s.api.core.v1.ServiceSpec"


def _resolve(node: Any, definitions: dict[str, Any]) -> Any:
    """The operator's schema with its template references inlined and unknown fields rejected.

    Pod and Service specs refer to Kubernetes' own schemas, which are checked by
    kubernetes-validate instead; here they stay plain objects.
    """
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref is not None:
            target = ref.rsplit("/", 1)[-1]
            if target in (POD_SPEC, SERVICE_SPEC):
                return {"type": "object"}
            return _resolve(definitions[target], definitions)
        out = {k: _resolve(v, definitions) for k, v in node.items()}
        if "properties" in node:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_resolve(v, definitions) for v in node]
    return node


def daskcluster_schema() -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / "daskcluster.yaml").read_text())
    definitions = yaml.safe_load((CRDS / "templates.yaml").read_text())["definitions"]
    (version,) = crd["spec"]["versions"]
    assert (crd["spec"]["group"], version["name"], crd["spec"]["names"]["kind"]) == (
        "kubernetes.dask.org",
        "v1",
        "DaskCluster",
    )
    schema = _resolve(version["schema"]["openAPIV3Schema"], definitions)
    # The CRD describes the resource's spec/status; apiVersion, kind and metadata are Kubernetes' own.
    schema["properties"] |= {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {}}
    return schema


def problems(manifest: dict[str, Any]) -> list[str]:
    found = [
        f"{'.'.join(map(str, e.path))}: {e.message}"
        for e in jsonschema.Draft7Validator(daskcluster_schema()).iter_errors(manifest)
    ]
    for role in ("scheduler", "worker"):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": role}, "spec": manifest["spec"][role]["spec"]}
        try:
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            found.append(f"{role} pod spec: {exc.message}")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    service["spec"] = manifest["spec"]["scheduler"]["service"]
    try:
        kubernetes_validate.validate(service, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        found.append(f"scheduler service: {exc.message}")
    return found


def test_cluster_spec_validates_against_the_operator_crd_and_kubernetes() -> None:
    settings = DaskSettings(
        namespace="ml-team",
        image="registry.example/churn:1.2.3",
        n_workers=5,
        threads_per_worker=2,
        worker_cpu="2",
        worker_memory="6Gi",
        idle_timeout_seconds=900,
    )
    manifest = make_cluster_spec(settings, name="churn-train")
    assert problems(manifest) == []
    assert manifest["metadata"] == {"name": "churn-train", "namespace": "ml-team"}
    assert manifest["spec"]["idleTimeout"] == 900
    worker = manifest["spec"]["worker"]
    assert worker["replicas"] == 5
    (container,) = worker["spec"]["containers"]
    assert container["image"] == "registry.example/churn:1.2.3"
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "6Gi"},
        "limits": {"cpu": "2", "memory": "6Gi"},
    }
    args = container["args"]
    assert args[args.index("--nthreads") + 1] == "2"
    assert args[args.index("--memory-limit") + 1] == "6Gi"
    (scheduler,) = manifest["spec"]["scheduler"]["spec"]["containers"]
    assert scheduler["image"] == "registry.example/churn:1.2.3"
    for pod in (container, scheduler):  # the step's telemetry choice goes to the cluster's pods
        env = {e["name"]: e["value"] for e in pod["env"]}
        assert env["MLFLOW_DISABLE_TELEMETRY"] == env["DO_NOT_TRACK"] == "true"


def test_the_crd_check_rejects_what_the_operator_would_reject() -> None:
    manifest = make_cluster_spec(DaskSettings())
    typo = copy.deepcopy(manifest)
    typo["spec"]["idleTimout"] = 5
    assert any("idleTimout" in p for p in problems(typo))
    wrong = copy.deepcopy(manifest)
    wrong["spec"]["idleTimeout"] = "ten minutes"
    assert any("idleTimeout" in p for p in problems(wrong))
    bad_pod = copy.deepcopy(manifest)
    bad_pod["spec"]["worker"]["spec"]["containers"][0]["resources"]["limits"]["gpus"] = {"n": 1}
    assert any("worker pod spec" in p for p in problems(bad_pod))


def test_engine_and_dask_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().engine == "pandas"
    monkeypatch.setenv("CHURN_ENGINE", "dask")
    monkeypatch.setenv("CHURN_DASK__SCHEDULER_ADDRESS", "tcp://scheduler:8786")
    monkeypatch.setenv("CHURN_DASK__N_WORKERS", "3")
    settings = Settings()
    assert settings.engine == "dask"
    assert settings.dask.scheduler_address == "tcp://scheduler:8786"
    assert settings.dask.n_workers == 3
    monkeypatch.setenv("CHURN_ENGINE", "spark")
    with pytest.raises(ValueError, match="engine"):
        Settings()


def test_local_cluster_is_sized_from_settings_and_closed_on_every_path() -> None:
    settings = DaskSettings(n_workers=2, threads_per_worker=1, memory_limit="1GiB")
    with pytest.raises(RuntimeError, match="stage failed"), dask_client(settings) as client:
        cluster = client.cluster
        assert cluster_size(client) == {"engine": "dask", "dask.workers": "2", "dask.threads": "2"}
        assert client.submit(sum, [1, 2, 3]).result() == 6
        raise RuntimeError("stage failed")
    assert client.status == "closed"
    assert cluster.status.name == "closed"


def test_an_existing_scheduler_is_used_and_left_running() -> None:
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with dask_client(DaskSettings(scheduler_address=cluster.scheduler_address)) as client:
            assert client.scheduler.address == cluster.scheduler_address
            assert client.submit(len, "abc").result() == 3
        assert client.status == "closed"
        assert cluster.status.name == "running"
        with Client(cluster) as again:
            assert again.submit(len, "ab").result() == 2


def test_an_unreachable_scheduler_is_a_clear_error() -> None:
    settings = DaskSettings(scheduler_address="tcp://127.0.0.1:9", connect_timeout_seconds=1)
    with (
        pytest.raises(ChurnError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"),
        dask_client(settings),
    ):
        pass


#: Run in a new interpreter (a fresh fork server and module state): three clusters, the
#: environment and folder changed for the second and put back for the third, then one spawned by setting.
FORKSERVER_SCRIPT = """
import json, os, sys
from churn.config import DaskSettings
from churn.engine.dask.cluster import dask_client

def probe():
    return os.getppid(), os.environ.get("CHURN_PROBE"), os.getcwd(), "churn.engine.dask.stages" in sys.modules

def workers(**update):
    settings = DaskSettings(n_workers=2, threads_per_worker=1, memory_limit="1GiB").model_copy(update=update)
    with dask_client(settings) as client:
        return sorted(client.run(probe).values())

if __name__ == "__main__":
    first, second = sys.argv[1:3]
    os.environ["CHURN_PROBE"] = "a"; os.chdir(first)
    seen = [workers()]
    os.environ["CHURN_PROBE"] = "b"; os.chdir(second)
    seen.append(workers())
    os.environ["CHURN_PROBE"] = "a"; os.chdir(first)
    seen.append(workers())
    seen.append(workers(worker_start="spawn"))
    print(json.dumps({"caller": os.getpid(), "seen": seen}))
"""


@pytest.mark.slow
def test_forked_workers_see_the_callers_environment_and_folder_else_they_are_spawned(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    script = tmp_path / "clusters.py"
    script.write_text(FORKSERVER_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(first), str(second)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    caller = result["caller"]
    forked, changed, back, spawned = ([tuple(w) for w in cluster] for cluster in result["seen"])
    # Forked: from the fork server (not the caller), with the engine's modules imported before any task.
    assert {w[0] for w in forked} != {caller} and len({w[0] for w in forked}) == 1
    assert all(w[1:] == ("a", str(first), True) for w in forked)
    # The caller changed a variable and its folder since the fork server started: spawned, seeing both.
    assert {w[0] for w in changed} == {caller}
    assert all(w[1:3] == ("b", str(second)) for w in changed)
    # Both back as the fork server has them: forked again, from the same fork server.
    assert {w[0] for w in back} == {w[0] for w in forked}
    assert all(w[1:] == ("a", str(first), True) for w in back)
    # worker_start=spawn: each worker a new interpreter, a child of the caller.
    assert {w[0] for w in spawned} == {caller}
    assert all(w[1:3] == ("a", str(first)) for w in spawned)
