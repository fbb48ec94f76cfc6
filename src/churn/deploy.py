"""Roll a new champion out to KServe: the InferenceService manifest, applying it, and rolling back.

The manifest is the chart's InferenceService (helm/churn-mlops/templates/inferenceservice.yaml)
with the champion's storage URI and version; a test keeps the two identical. In a cluster
the deploy step creates or patches it through the Kubernetes API, waits until KServe
reports it Ready and, when it does not become Ready in time, rolls back: a canary goes to
0% (KServe keeps serving the previous revision), a full rollout gets its previous storage
URI back. Without a cluster it writes the manifest it would apply, and says so.

A progressive rollout starts from a canary manifest (:func:`canary_inference_service`),
in KServe's two shapes: Knative (``Serverless``) keeps one spec, the new model's, with
``canaryTrafficPercent`` on its components (KServe routes the rest to the previous rolled-out
revision); Standard (``RawDeployment``) keeps the stable spec and adds a ``spec.canary[]``
entry: the new model's predictor and its ``trafficPercent``. Canary entries have only a
predictor, so in transformer mode the canary predictor sits behind the stable transformer.
Annotations name the stable and the canary version, so anyone reading the object (the
rollout's traffic split, ``churn rollout status``) knows who serves what.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from churn.errors import ChurnError
from churn.storage import atomic_path
from churn.storage.s3 import s3_settings
from churn.telemetry import telemetry_env_vars

if TYPE_CHECKING:
    from churn.config import ServingMode, Settings

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
#: Annotations naming the versions of a rollout in progress (the stable one stays after it ends).
STABLE_VERSION, CANARY_VERSION = "churn-mlops/stable-model-version", "churn-mlops/canary-model-version"
VERSION_LABEL = "churn-mlops/model-version"
#: KServe's names for the Knative deployment mode (0.15 renamed Serverless to Knative).
KNATIVE_MODES = ("Serverless", "Knative")


@dataclass(frozen=True)
class ServingTarget:
    """Where and how the InferenceService runs (the chart's values for it)."""

    name: str = "churn-model"
    namespace: str = "churn-mlops"
    release: str = "churn"
    image: str = "ghcr.io/churn-mlops/churn-serving:0.1.0"
    predictor_protocol: str = "grpc-v2"
    #: ``transformer`` (our transformer in front of our predictor) or ``single`` (one single-pass predictor).
    mode: ServingMode = "transformer"
    max_batch_size: int = 10_000
    deployment_mode: str = "RawDeployment"
    #: Where the transformer logs its answers (empty: no log), and the S3 it writes them to.
    prediction_log_uri: str = ""
    s3_secret: str = "churn-s3"
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    #: A shadow the transformer also sends every request to (``host:port``; empty: none), and its model name.
    shadow_predictor_host: str = ""
    shadow_model_name: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, *, name: str = "", namespace: str = "") -> ServingTarget:
        """The target the settings describe (in a cluster: the chart's ``<release>-pipeline-env`` ConfigMap).

        The S3 endpoint and region follow :func:`churn.storage.s3.s3_settings`, like every S3 client.
        """
        s3 = s3_settings()
        return cls(
            name=name or settings.serving.model_name,
            namespace=namespace or settings.deploy.namespace,
            release=settings.deploy.release,
            image=settings.deploy.serving_image,
            predictor_protocol=settings.serving.predictor_protocol,
            mode=settings.serving.mode,
            max_batch_size=settings.serving.max_batch_size,
            deployment_mode=settings.deploy.deployment_mode,
            prediction_log_uri=settings.serving.prediction_log_uri or "",
            s3_secret=settings.deploy.s3_secret,
            s3_endpoint=s3.endpoint,
            s3_region=s3.region,
            shadow_predictor_host=settings.serving.shadow_predictor_host or "",
            shadow_model_name=settings.serving.shadow_model_name or "",
        )


def storage_uri(download_uri: str) -> str:
    """The ``s3://`` URI KServe's storage initializer can fetch, from MLflow's download URI of a version.

    Raises:
        ChurnError: The artifacts are not in S3 (a local store, or a proxied ``mlflow-artifacts:`` store).

    """
    if download_uri.startswith("s3://"):
        return download_uri.rstrip("/")
    raise ChurnError(
        f"model artifacts at {download_uri} are not in S3; KServe needs an s3:// storageUri "
        "(run MLflow with --default-artifact-root s3://<bucket>/)"
    )


CONTAINER_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""The chart's ``churn.containerSecurity`` (restricted Pod Security Standard); a test holds them equal."""


def inference_service(
    target: ServingTarget, storage: str, *, model_version: str, canary_percent: int | None = None
) -> dict[str, Any]:
    """The InferenceService for ``storage`` as the chart renders it.

    Our predictor runtime and our transformer; in single-pass mode (``target.mode``) the
    single-pass runtime alone.
    """
    account = f"{target.release}-models"
    single = target.mode == "single"
    if single and target.shadow_predictor_host:
        raise ChurnError("a shadow needs serving mode 'transformer' (the single-pass server calls no predictor)")
    version_args = [f"--model_version={model_version}"] if model_version else []
    log_args, log_env = _prediction_log(target)
    model: dict[str, Any] = {
        "modelFormat": {"name": "mlflow"},
        "protocolVersion": "v2" if single else target.predictor_protocol,
        "runtime": f"{target.release}-{'single' if single else 'mlflow'}",
        "storageUri": storage,
    }
    model_args = [*version_args, *log_args] if single else version_args
    if model_args:
        model["args"] = model_args
    if single and log_env:
        model["env"] = log_env
    predictor: dict[str, Any] = {
        "serviceAccountName": account,
        # The account carries the S3 credentials for KServe's storage initializer; the servers call no Kubernetes API.
        "automountServiceAccountToken": False,
        "minReplicas": 1,
        "maxReplicas": 3,
        "model": model,
    }
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    spec: dict[str, Any] = {"predictor": predictor}
    if not single:
        # The deploy task's own telemetry choice (the chart's pipeline env) first, as the chart renders it.
        env = [*telemetry_env_vars(), {"name": "STORAGE_URI", "value": storage}, {"name": "HOME", "value": "/tmp"}]
        transformer = {
            "name": "kserve-container",
            "image": target.image,
            "command": ["python", "-m", "churn.serving.transformer"],
            "args": [
                "--model_dir=/mnt/models",
                f"--predictor_protocol={target.predictor_protocol}",
                f"--max_batch_size={target.max_batch_size}",
                *version_args,
                *log_args,
                *_shadow_args(target),
            ],
            "env": env + log_env,
            "securityContext": copy.deepcopy(CONTAINER_SECURITY),  # a manifest of its own, never the shared dict
        }
        spec["transformer"] = {
            "serviceAccountName": account,
            "automountServiceAccountToken": False,
            "minReplicas": 1,
            "maxReplicas": 3,
            "containers": [transformer],
        }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {
            "name": target.name,
            "namespace": target.namespace,
            "annotations": {"serving.kserve.io/deploymentMode": target.deployment_mode},
            "labels": {"app.kubernetes.io/managed-by": "churn-mlops", VERSION_LABEL: model_version},
        },
        "spec": spec,
    }


def canary_inference_service(
    target: ServingTarget,
    storage: str,
    *,
    model_version: str,
    stable_storage: str,
    stable_version: str,
    percent: int,
) -> dict[str, Any]:
    """The InferenceService serving ``model_version`` as a canary on ``percent`` of the traffic.

    Knative (``target.deployment_mode`` Serverless/Knative): the new model's spec with
    ``canaryTrafficPercent`` on every component (each component splits its own traffic).
    Standard (RawDeployment): the stable spec plus one ``spec.canary[]`` entry holding the new
    model's predictor. Both carry the two versions as annotations.
    """
    canary = inference_service(target, storage, model_version=model_version)
    if target.deployment_mode in KNATIVE_MODES:
        manifest = canary
        for component in manifest["spec"].values():
            component["canaryTrafficPercent"] = percent
        # The canary revision's front door logs its answers as variant canary (promotion re-renders without it).
        front = manifest["spec"].get("transformer", {}).get("containers", [None])[0]
        args = front["args"] if front is not None else manifest["spec"]["predictor"]["model"].setdefault("args", [])
        args.append("--variant=canary")
    else:
        manifest = inference_service(target, stable_storage, model_version=stable_version)
        predictor = canary["spec"]["predictor"]
        # The CRD requires a canary model's name; the service's own keeps the V2 path the transformer calls.
        predictor["model"] = {"name": target.name, **predictor["model"]}
        manifest["spec"]["canary"] = [{"predictor": predictor, "trafficPercent": percent}]
    manifest["metadata"]["annotations"].update({STABLE_VERSION: stable_version, CANARY_VERSION: model_version})
    return manifest


def _shadow_args(target: ServingTarget) -> list[str]:
    """The transformer's flags for a shadow predictor (the chart's ``serving.shadow``), none without one."""
    if not target.shadow_predictor_host:
        return []
    name = [f"--shadow_model_name={target.shadow_model_name}"] if target.shadow_model_name else []
    return [f"--shadow_predictor_host={target.shadow_predictor_host}", *name]


def _prediction_log(target: ServingTarget) -> tuple[list[str], list[dict[str, Any]]]:
    """The log's flag and the environment its writer (churn.storage.sigv4) needs: S3 endpoint and credentials."""
    if not target.prediction_log_uri:
        return [], []
    env: list[dict[str, Any]] = [
        {"name": "AWS_ENDPOINT_URL", "value": target.s3_endpoint},
        {"name": "AWS_DEFAULT_REGION", "value": target.s3_region},
    ]
    env += [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": target.s3_secret, "key": key}}}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    ]
    return [f"--prediction_log={target.prediction_log_uri}"], env


class CustomObjects(Protocol):
    """The part of ``kubernetes.client.CustomObjectsApi`` the deploy step uses."""

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> Any: ...

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: Any
    ) -> Any: ...

    def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: Any
    ) -> Any: ...


@dataclass(frozen=True)
class Rollout:
    """What the deploy step did."""

    applied: bool
    ready: bool
    rolled_back: bool
    message: str
    manifest: Path | None = None


def write_manifest(manifest: dict[str, Any], path: Path) -> Rollout:
    """No cluster: write the manifest the deploy step would apply (atomically) and say so."""
    import yaml

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return Rollout(False, False, False, f"no cluster: wrote the InferenceService it would apply to {path}", path)


def apply(manifest: dict[str, Any], api: CustomObjects, *, timeout: float = 600, poll: float = 5) -> Rollout:
    """Create or patch the InferenceService, wait until Ready, roll back when it does not get there.

    Raises:
        ChurnError: The rollout did not become Ready in ``timeout`` seconds (after rolling back).

    """
    meta = manifest["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    previous = read_inference_service(api, namespace, name)
    if previous is None:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    else:
        api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, replacing_patch(manifest, previous))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_inference_service(api, namespace, name) or {}
        if _ready(status, manifest):
            return Rollout(True, True, False, f"InferenceService {namespace}/{name} is Ready")
        time.sleep(poll)
    rolled_back = previous is not None
    if previous is not None:
        api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, _rollback(manifest, previous))
    what = "rolled back to the previous model" if rolled_back else "left in place (there was no previous one)"
    raise ChurnError(f"InferenceService {namespace}/{name} was not Ready after {timeout:.0f}s; {what}")


def read_inference_service(api: CustomObjects, namespace: str, name: str) -> dict[str, Any] | None:
    """The InferenceService as the API server has it, None when there is none.

    Raises:
        ChurnError: The API server could not be read (anything but 404).

    """
    try:
        return dict(api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))
    except Exception as exc:  # the kubernetes client raises ApiException(status=404)
        if getattr(exc, "status", None) == 404:
            return None
        raise ChurnError(f"cannot read InferenceService {namespace}/{name}: {exc}") from exc


def _ready(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    spec_uri = current.get("spec", {}).get("predictor", {}).get("model", {}).get("storageUri")
    if spec_uri != wanted["spec"]["predictor"]["model"]["storageUri"]:
        return False
    status = current.get("status", {})
    if "canary" in wanted["spec"] and any(c.get("ready") is False for c in status.get("canaryStatuses", [])):
        return False  # a Standard canary: the stable predictor is Ready already; a canary entry said not ready
    conditions = status.get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _rollback(wanted: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """A canary goes to 0% or its entry goes (the stable model serves); a full rollout gets the old model back."""
    return canary_abort_patch(wanted) or replacing_patch({"spec": previous["spec"]}, wanted)


def canary_abort_patch(current: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch sending all traffic back to the stable model; None when ``current`` has no canary.

    Standard: the ``spec.canary[]`` entry goes (and the canary annotation with it). Knative:
    every component's ``canaryTrafficPercent`` goes to 0 (KServe serves the previous rolled-out
    revision; the spec still names the canary model until the next rollout replaces it).
    """
    spec = current["spec"]
    if spec.get("canary"):
        return {"metadata": {"annotations": {CANARY_VERSION: None}}, "spec": {"canary": None}}
    split = {key: {"canaryTrafficPercent": 0} for key, c in spec.items() if "canaryTrafficPercent" in c}
    return {"spec": split} if split else None


def replacing_patch(patch: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that also removes the components ``current`` has and ``patch`` does not.

    The API server merges a patch (RFC 7386): a component left out stays. Switching serving
    modes must drop the transformer (single-pass) or the rollback must drop it again, so a
    component the patch leaves out is sent as null; so are a canary's traffic percent and
    annotation when the patch is a full rollout.
    """
    spec: dict[str, Any] = {key: None for key in current.get("spec", {}) if key not in patch["spec"]}
    for key, component in patch["spec"].items():
        had = current.get("spec", {}).get(key)
        if (
            isinstance(component, dict)
            and "canaryTrafficPercent" not in component
            and "canaryTrafficPercent" in (had or {})
        ):
            spec[key] = {**component, "canaryTrafficPercent": None}
    replaced = {**patch, "spec": {**patch["spec"], **spec}}
    annotations = current.get("metadata", {}).get("annotations", {})
    if CANARY_VERSION in annotations and "metadata" in patch:
        wanted = patch["metadata"].get("annotations", {})
        if CANARY_VERSION not in wanted:
            meta = {**patch["metadata"], "annotations": {**wanted, CANARY_VERSION: None}}
            replaced["metadata"] = meta
    return replaced


def shadow_inference_service(target: ServingTarget, storage: str, *, model_version: str) -> dict[str, Any]:
    """The shadow's InferenceService ``<name>-shadow``: the challenger on our predictor runtime, predictor only.

    No transformer and no traffic of its own: the champion's transformer sends it a copy of each
    request's model matrix (``--shadow_predictor_host`` = :func:`shadow_predictor_host`,
    ``--shadow_model_name=<name>-shadow``) and logs its answers as variant ``shadow``. It takes
    the same protocol as the champion's predictor. Shadow mode is a transformer-mode feature.

    Raises:
        ChurnError: ``target.mode`` is ``single`` (the single-pass server calls no predictor).

    """
    if target.mode != "transformer":
        raise ChurnError("a shadow needs serving mode 'transformer' (the single-pass server calls no predictor)")
    manifest = inference_service(target, storage, model_version=model_version)
    manifest["metadata"]["name"] = shadow_name(target)
    manifest["metadata"]["labels"]["churn-mlops/variant"] = "shadow"
    del manifest["spec"]["transformer"]
    predictor = manifest["spec"]["predictor"]
    predictor["minReplicas"], predictor["maxReplicas"] = 1, 1  # a copy of the traffic: no autoscaling for it
    return manifest


def shadow_name(target: ServingTarget) -> str:
    """The shadow InferenceService's name, which is also the model name its predictor answers to."""
    return f"{target.name}-shadow"


def shadow_predictor_host(target: ServingTarget) -> str:
    """``host:port`` of the shadow's predictor Service, for the transformer's ``--shadow_predictor_host``.

    KServe names a component's Service ``<isvc>-predictor`` and serves it on port 80 in both
    deployment modes (read from KServe's sources; not checked on a cluster here).
    """
    return f"{shadow_name(target)}-predictor.{target.namespace}.svc.cluster.local:80"
