"""The Helm chart, validated offline with real tools (no cluster here).

``helm lint`` and ``helm template`` (the helm binary from PyPI, scripts/install_helm.sh);
every rendered core object against the Kubernetes 1.30 schemas (kubernetes-validate,
strict); every custom resource against its CRD schema in tests/vendor/crds with unknown
fields rejected; bad values rejected by values.schema.json.
"""

from __future__ import annotations

import copy
import functools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "churn-mlops"
CRDS = ROOT / "tests" / "vendor" / "crds"  # vendored copies, see tests/vendor/README.md
K8S_VERSION = "1.30"
ALL_ON = [
    *("--set", "serving.canaryTrafficPercent=10", "--set-string", "serving.modelVersion=7"),
    *("--set", "s3.useHttps=true"),
    *("--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.prometheusRule.enabled=true"),
    *("--set", "monitoring.grafanaDashboard.enabled=true"),
    *("--set", "mlflow.backendStoreUri=postgresql://mlflow@db:5432/mlflow"),
    *("--set", "networkPolicy.allowedNamespaces={kubeflow,team-a}", "--set", "pipelines.namespace=kubeflow"),
    *("--set", "dask.enabled=true"),
]

SINGLE = ["--set", "serving.mode=single"]


def render(helm: str, *args: str, release: str = "churn") -> list[dict[str, Any]]:
    done = subprocess.run(
        [helm, "template", release, str(CHART), "--namespace", "ml", *args], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.load_all(done.stdout, Loader=SAFE_LOADER) if doc]


def _strict(schema: Any) -> Any:
    """A CRD's openAPIV3Schema as JSON Schema that rejects fields the CRD does not declare."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes")}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


#: PyYAML's LibYAML loader when the wheel has it: the vendored CRDs are 2.5 MB of YAML, which
#: the pure-Python loader took 7.4 s of CPU to read (LibYAML: 1.3 s).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """A strict validator per (apiVersion, kind) of the vendored CRDs, read once per process.

    Every ``validate`` call used to read the CRDs again: 400 s of a CI run's CPU, mostly
    under the property tests that validate each generated manifest.
    """
    validators = {}
    for path in CRDS.glob("*.yaml"):
        for doc in yaml.load_all(path.read_text(), Loader=SAFE_LOADER):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = _strict(version["schema"]["openAPIV3Schema"])
                validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


def validate(objects: list[dict[str, Any]]) -> Iterator[str]:
    """Problems found in rendered objects (empty when everything validates)."""
    custom = crd_validators()
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in custom:
            for error in custom[key].iter_errors(obj):
                yield f"{obj['kind']}/{obj['metadata']['name']}: {'.'.join(map(str, error.path))}: {error.message}"
        else:
            try:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                yield f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}"


def test_helm_lint_passes(helm: str) -> None:
    for args in ([], ALL_ON):
        done = subprocess.run([helm, "lint", str(CHART), "--strict", *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("args", [[], ALL_ON, [*ALL_ON, *SINGLE]], ids=["defaults", "all-on", "all-on-single-pass"])
def test_rendered_objects_validate_against_kubernetes_and_crd_schemas(helm: str, args: list[str]) -> None:
    objects = render(helm, *args)
    kinds = {o["kind"] for o in objects}
    assert {"InferenceService", "ServingRuntime", "ServiceAccount", "Secret", "Pod", "StatefulSet", "Job"} <= kinds
    assert {"Deployment", "Service", "NetworkPolicy", "Role", "RoleBinding"} <= kinds
    if args:
        assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= kinds
    else:
        assert not {"ServiceMonitor", "PodMonitor", "PrometheusRule"} & kinds  # behind their flags
    assert list(validate(objects)) == []


def test_the_validator_rejects_unknown_fields(helm: str) -> None:
    """The check above can fail: a typo in a custom resource or a core object is reported."""
    objects = render(helm)
    broken = copy.deepcopy(objects)
    isvc = next(o for o in broken if o["kind"] == "InferenceService")
    isvc["spec"]["predictor"]["model"]["storgeUri"] = "s3://typo"
    account = next(o for o in broken if o["kind"] == "ServiceAccount")
    account["secretz"] = []
    problems = list(validate(broken))
    assert any("storgeUri" in p for p in problems) and any("secretz" in p for p in problems), problems


def test_inference_service_wiring(helm: str) -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in render(helm, *ALL_ON)}
    isvc = objects[("InferenceService", "churn-model")]
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "mlflow" and model["protocolVersion"] == "grpc-v2"
    assert model["runtime"] == "churn-mlflow" and ("ServingRuntime", "churn-mlflow") in objects
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    transformer = isvc["spec"]["transformer"]["containers"][0]
    assert transformer["command"] == ["python", "-m", "churn.serving.transformer"]
    assert "--predictor_protocol=grpc-v2" in transformer["args"]
    assert {"name": "STORAGE_URI", "value": model["storageUri"]} in transformer["env"]
    runtime = objects[("ServingRuntime", "churn-mlflow")]["spec"]
    assert runtime["containers"][0]["ports"][0]["name"] == "h2c"  # the transformer calls the predictor over gRPC
    account = objects[("ServiceAccount", "churn-models")]
    assert account["metadata"]["annotations"]["serving.kserve.io/s3-usehttps"] == "1"
    for container in (transformer, runtime["containers"][0]):
        security = container["securityContext"]
        assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
        assert security["capabilities"]["drop"] == ["ALL"]
    rest = {(o["kind"], o["metadata"]["name"]): o for o in render(helm, "--set", "serving.predictorProtocol=v2")}
    assert rest[("ServingRuntime", "churn-mlflow")]["spec"]["containers"][0]["ports"][0]["name"] == "http1"


def test_single_pass_mode_is_one_predictor_that_callers_reach(helm: str) -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in render(helm, *ALL_ON, *SINGLE)}
    isvc = objects[("InferenceService", "churn-model")]
    assert set(isvc["spec"]) == {"predictor"}  # no transformer
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == "churn-single" and model["protocolVersion"] == "v2"
    assert model["args"] == ["--model_version=7", "--prediction_log=s3://mlflow/predictions/"]
    assert {e["name"] for e in model["env"]} >= {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    runtime = objects[("ServingRuntime", "churn-single")]["spec"]
    (container,) = runtime["containers"]
    assert container["command"] == ["python", "-m", "churn.serving.single"]
    assert container["ports"] == [{"containerPort": 8080, "name": "http1", "protocol": "TCP"}]
    assert not runtime["supportedModelFormats"][0]["autoSelect"]  # chosen by name, never for someone else's model
    # The predictor is the front door: no policy keeps callers out, helm test and NOTES call it.
    assert ("NetworkPolicy", "churn-predictor") not in objects
    assert ("NetworkPolicy", "churn-predictor") in {(o["kind"], o["metadata"]["name"]) for o in render(helm, *ALL_ON)}
    test_pod = objects[("Pod", "churn-test-v2-request")]
    assert "http://churn-model-predictor.ml/v2/models/churn-model/infer" in test_pod["spec"]["containers"][0]["args"][0]
    env = objects[("ConfigMap", "churn-pipeline-env")]["data"]
    assert env["CHURN_SERVING__MODE"] == "single"


def test_existing_secret_replaces_the_generated_one(helm: str) -> None:
    def secrets_and_account(*args: str) -> tuple[set[str], list[dict[str, str]]]:
        objects = render(helm, "--set", "s3.existingSecret=team-s3", *args)
        account = next(o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "churn-models")
        return {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}, account["secrets"]

    # In-cluster MinIO: the pipelines use the given user; the bucket Job creates the generated read-only one.
    names, account_secrets = secrets_and_account()
    assert "churn-s3" not in names and {"churn-s3-reader", "churn-minio-root"} <= names
    assert account_secrets == [{"name": "churn-s3-reader"}]
    # An external S3: the given Secret is the only S3 identity, the model servers' too.
    names, account_secrets = secrets_and_account("--set", "minio.enabled=false")
    assert not {n for n in names if n.startswith(("churn-s3", "churn-minio"))}
    assert account_secrets == [{"name": "team-s3"}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "serving.maxBatchSize=lots"], "maxBatchSize"),
        (["--set", "serving.predictorProtocol=v1"], "predictorProtocol"),
        (["--set", "serving.mode=sidecar"], "mode"),
        (["--set", "serving.single.minReplicas=-1"], "minReplicas"),
        (["--set", "serving.replicas=3"], "replicas"),
        (["--set", "s3.endpoint=http://minio:9000"], "endpoint"),
        (["--set", "serving.canaryTrafficPercent=150"], "canaryTrafficPercent"),
        (["--set", "networkPolicy.allowedNamespaces={Kube_Flow}"], "allowedNamespaces"),
        (["--set", "rollout.steps={10,150}"], "steps"),
        (["--set-json", "rollout.thresholds.maxLatencyRatio=0.5"], "maxLatencyRatio"),
        (["--set", "rollout.prometheusUrl=prometheus:9090"], "prometheusUrl"),
    ],
)
def test_bad_values_are_rejected_by_the_schema(helm: str, args: list[str], message: str) -> None:
    done = subprocess.run([helm, "template", "churn", str(CHART), *args], capture_output=True, text=True)
    assert done.returncode != 0
    assert message in done.stderr


def test_every_value_is_documented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        is_leaf = stripped and not stripped.startswith("#") and not stripped.endswith(":")
        is_leaf = is_leaf and not stripped.startswith(("requests:", "limits:"))  # documented on `resources`
        if is_leaf and ":" in stripped and not line.startswith(" " * 6):
            assert lines[number - 1].strip().startswith("# --"), f"values.yaml line {number + 1} has no '# --' doc"
        if stripped == "resources:":
            assert lines[number - 1].strip().startswith("# --"), f"values.yaml line {number + 1} has no '# --' doc"


def test_prometheus_rule_renders_the_packaged_alert_rules(helm: str) -> None:
    packaged = ROOT / "src" / "churn" / "monitoring" / "rules" / "churn-alerts.yaml"
    assert (CHART / "files" / "churn-alerts.yaml").read_text() == packaged.read_text(), "copy the rules into the chart"
    rule = next(o for o in render(helm, *ALL_ON) if o["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(packaged.read_text())["groups"]


def test_mlflow_server_settings(helm: str) -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in render(helm)}
    server = objects[("Deployment", "churn-mlflow")]["spec"]["template"]["spec"]["containers"][0]
    assert "--allowed-hosts=" in " ".join(server["args"]) and "churn-mlflow.ml.svc" in " ".join(server["args"])
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://churn-minio.ml.svc:9000"
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("sqlite:////data/")
    assert ("PersistentVolumeClaim", "churn-mlflow") in objects
    with_db = {(o["kind"], o["metadata"]["name"]) for o in render(helm, *ALL_ON)}
    assert ("PersistentVolumeClaim", "churn-mlflow") not in with_db
    external = render(helm, "--set", "minio.enabled=false", "--set", "s3.endpoint=s3.eu-west-1.amazonaws.com")
    assert not [o for o in external if o["kind"] == "StatefulSet"]
    account = next(o for o in external if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "churn-models")
    assert account["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"] == "s3.eu-west-1.amazonaws.com"


def test_dashboard_config_map_holds_the_packaged_dashboard(helm: str) -> None:
    packaged = ROOT / "src" / "churn" / "monitoring" / "dashboards" / "churn-overview.json"
    assert (CHART / "files" / "churn-overview.json").read_text() == packaged.read_text(), "copy it into the chart"
    config_map = next(o for o in render(helm, *ALL_ON) if o["metadata"]["name"] == "churn-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["churn-overview.json"]) == json.loads(packaged.read_text())
    assert not [o for o in render(helm) if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"]]


def test_pipelines_elsewhere_and_prometheus_reach_what_they_need(helm: str) -> None:
    policies = {o["metadata"]["name"]: o["spec"] for o in render(helm, *ALL_ON) if o["kind"] == "NetworkPolicy"}

    def namespaces(rule: dict[str, Any]) -> set[str]:
        return {
            p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for p in rule["from"]
            if p.get("namespaceSelector")
        }

    for component in ("minio", "mlflow", "pushgateway"):
        first = policies[f"churn-{component}"]["ingress"][0]
        assert {"podSelector": {}} in first["from"] and namespaces(first) == {"kubeflow", "team-a"}, component
    scrape = policies["churn-pushgateway"]["ingress"][1]
    assert namespaces(scrape) == {"monitoring"} and scrape["ports"] == [{"port": 9091, "protocol": "TCP"}]
    assert len(policies["churn-minio"]["ingress"]) == 1  # only the Pushgateway is scraped from outside
    # The pipelines' pods run in kubeflow: what they read is there, and the deployer may deploy here.
    objects = render(helm, *ALL_ON)
    placed = {(o["kind"], o["metadata"]["name"]): o["metadata"].get("namespace") for o in objects}
    assert placed[("ConfigMap", "churn-pipeline-env")] == placed[("ServiceAccount", "churn-deployer")] == "kubeflow"
    where: dict[str, list[str]] = {}
    for o in objects:
        if o["kind"] == "Secret":
            where.setdefault(o["metadata"]["name"], []).append(o["metadata"].get("namespace", "ml"))
    # What the pipelines' tasks read is in both namespaces; what only the servers and Jobs read stays here.
    mlflow_users = {f"churn-mlflow-{role}" for role in ("pipeline", "gate", "reader")}
    for_pipelines = {"churn-s3", "churn-pushgateway", *mlflow_users}
    assert {name for name, spaces in where.items() if sorted(spaces) == ["kubeflow", "ml"]} == for_pipelines
    assert all(spaces == ["ml"] for name, spaces in where.items() if name not in for_pipelines)
    (binding,) = [o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["name"] == "churn-deployer"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "churn-deployer", "namespace": "kubeflow"}]
    assert "namespace" not in binding["metadata"]  # the Role and its binding stay with the InferenceService
    closed = {
        o["metadata"]["name"]: o["spec"]
        for o in render(helm, "--set", "networkPolicy.prometheusNamespace=")
        if o["kind"] == "NetworkPolicy"
    }
    assert closed["churn-pushgateway"]["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_without_serving_the_pipeline_owns_the_inference_service_and_helm_test_still_checks_it(helm: str) -> None:
    objects = render(helm, "--set", "serving.enabled=false")
    assert not [o for o in objects if o["kind"] == "InferenceService"]
    (pod,) = [o for o in objects if o["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "http://churn-model-transformer.ml/v2/models/churn-model/infer" in pod["spec"]["containers"][0]["args"][0]
    assert [o for o in objects if o["kind"] == "ServingRuntime"]  # the deploy step's ISVC names this runtime


def test_dask_engine_rbac_and_network_policy(helm: str) -> None:
    assert not [o for o in render(helm) if o["metadata"]["name"] == "churn-dask"]
    objects = render(helm, "--set", "dask.enabled=true", "--set", "pipelines.namespace=kubeflow")
    dask = {o["kind"]: o for o in objects if o["metadata"]["name"] == "churn-dask"}
    assert set(dask) == {"Role", "RoleBinding", "NetworkPolicy"}
    assert {o["metadata"]["namespace"] for o in dask.values()} == {"kubeflow"}
    rules = {
        (g, r): set(rule["verbs"])
        for rule in dask["Role"]["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert {"create", "delete", "get"} <= rules[("kubernetes.dask.org", "daskclusters")]
    assert rules[("", "pods")] == rules[("", "services")] == {"get", "list", "watch"}
    (subject,) = dask["RoleBinding"]["subjects"]
    assert (subject["name"], subject["namespace"]) == ("churn-deployer", "kubeflow")
    policy = dask["NetworkPolicy"]["spec"]
    assert policy["podSelector"] == {"matchExpressions": [{"key": "dask.org/cluster-name", "operator": "Exists"}]}
    assert policy["ingress"] == [{"from": [{"podSelector": {}}]}]
    quiet = render(
        helm, "--set", "dask.enabled=true", "--set", "networkPolicy.enabled=false", "--set", "rbac.create=false"
    )
    assert not [o for o in quiet if o["metadata"]["name"] == "churn-dask"]


def _pod_specs(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod spec a rendered workload makes, named ``Kind/name[/role]``."""
    spec = obj.get("spec") or {}
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
        yield name, spec["template"]["spec"]
    elif obj["kind"] in ("Pod", "ServingRuntime"):
        yield name, spec
    elif obj["kind"] == "InferenceService":
        for role in ("predictor", "transformer"):
            if role in spec:  # single-pass mode has a predictor only
                yield f"{name}/{role}", spec[role]


def _containers(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every container a rendered workload runs, named ``Kind/name[/role]/container``."""
    for name, pod in _pod_specs(obj):
        for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
            yield f"{name}/{container.get('name')}", container


@pytest.mark.parametrize(("args", "expected"), [([], "true"), (["--set", "telemetry.enabled=true"], "false")])
def test_every_workload_has_telemetry_switched_as_the_values_say(helm: str, args: list[str], expected: str) -> None:
    """MLflow's telemetry (and DO_NOT_TRACK) in every container and in the pipelines' environment."""
    objects = render(helm, *ALL_ON, *args)
    seen = 0
    for obj in objects:
        for name, container in _containers(obj):
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            assert env.get("MLFLOW_DISABLE_TELEMETRY") == expected, name
            assert env.get("DO_NOT_TRACK") == expected, name
            seen += 1
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "StatefulSet", "Job", "Pod", "ServingRuntime", "InferenceService"} <= kinds
    assert seen >= 8  # mlflow, minio, bucket job, users job, pushgateway, runtime, transformer, helm test
    pipeline_env = next(o for o in objects if o["metadata"]["name"].endswith("-pipeline-env"))
    assert pipeline_env["data"]["MLFLOW_DISABLE_TELEMETRY"] == expected
    assert pipeline_env["data"]["DO_NOT_TRACK"] == expected


#: Volume types the restricted Pod Security Standard allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim"}
RESTRICTED_VOLUMES |= {"projected", "secret"}


def hardening_violations(obj: dict[str, Any], *, resources: bool = True) -> Iterator[str]:
    """What breaks the restricted Pod Security Standard, or kube-score's token and resource checks."""
    for name, pod in _pod_specs(obj):
        # A ServingRuntime has no such field (the CRD's pod spec is partial): its pods are the
        # InferenceService predictor's, which sets it.
        if obj["kind"] != "ServingRuntime" and pod.get("automountServiceAccountToken") is not False:
            yield f"{name}: mounts a service account token (no pod of ours calls the Kubernetes API)"
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(field):
                yield f"{name}: {field}"
        for volume in pod.get("volumes", []):
            kinds = set(volume) - {"name"}
            if not kinds <= RESTRICTED_VOLUMES:
                yield f"{name}: volume {volume['name']} of type {sorted(kinds)}"
        pod_security = pod.get("securityContext") or {}
        for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
            where = f"{name}/{container.get('name')}"
            security = container.get("securityContext") or {}
            if not security.get("runAsNonRoot", pod_security.get("runAsNonRoot")):
                yield f"{where}: runAsNonRoot is not true"
            if security.get("allowPrivilegeEscalation") is not False or security.get("privileged"):
                yield f"{where}: may escalate privileges"
            if not security.get("readOnlyRootFilesystem"):
                yield f"{where}: writable root filesystem"
            capabilities = security.get("capabilities") or {}
            if "ALL" not in capabilities.get("drop", []) or set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
                yield f"{where}: capabilities {capabilities}"
            seccomp = (security.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                yield f"{where}: seccomp profile {seccomp}"
            limits = container.get("resources", {}).get("limits", {})
            requests = container.get("resources", {}).get("requests", {})
            if resources and not ({"cpu", "memory"} <= set(requests) and "memory" in limits):
                wanted = "wanted cpu and memory requests, a memory limit"
                yield f"{where}: resources {container.get('resources')} ({wanted})"


@pytest.mark.parametrize(
    "args",
    [[], ALL_ON, [*ALL_ON, *SINGLE], ["--set", "serving.enabled=false"]],
    ids=["defaults", "all-on", "all-on-single-pass", "no-inference-service"],
)
def test_every_workload_is_hardened(helm: str, args: list[str]) -> None:
    """Restricted Pod Security Standard, no service-account token, requests and a memory limit, in every pod."""
    objects = render(helm, *args)
    checked = [obj for obj in objects if list(_pod_specs(obj))]
    assert [v for obj in checked for v in hardening_violations(obj)] == []
    names = {f"{o['kind']}/{o['metadata']['name']}" for o in checked}
    wanted = {"Deployment/churn-mlflow", "Deployment/churn-pushgateway", "StatefulSet/churn-minio"}
    wanted |= {"Job/churn-create-bucket", "Job/churn-mlflow-users", "Pod/churn-test-v2-request"}
    wanted |= {"ServingRuntime/churn-mlflow"} | ({"ServingRuntime/churn-single"} if SINGLE[-1] in args else set())
    assert wanted <= names
    assert ("InferenceService/churn-model" in names) == ("serving.enabled=false" not in args)


def test_the_hardening_check_finds_what_it_looks_for(helm: str) -> None:
    """The rules above can fail: a pod that breaks each one is named for each."""
    (job,) = [o for o in render(helm) if o["metadata"]["name"] == "churn-create-bucket"]
    pod = job["spec"]["template"]["spec"]
    del pod["automountServiceAccountToken"]
    pod["hostNetwork"] = True
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    container = pod["containers"][0]
    container["securityContext"].update(allowPrivilegeEscalation=True, readOnlyRootFilesystem=False, runAsNonRoot=False)
    container["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    del container["securityContext"]["seccompProfile"]
    del container["resources"]["limits"]
    found = "\n".join(hardening_violations(job))
    for expected in ("token", "hostNetwork", "hostPath", "escalate", "writable", "runAsNonRoot", "SYS_ADMIN"):
        assert expected in found
    assert "seccomp profile None" in found and "memory limit" in found
