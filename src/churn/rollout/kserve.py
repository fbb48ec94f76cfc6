"""The traffic split of a rollout in a cluster: the InferenceService's canary, through the Kubernetes API.

Both KServe deployment modes, as :func:`churn.deploy.canary_inference_service` renders them:
Knative keeps the canary model in the spec with ``canaryTrafficPercent`` on its components;
Standard keeps the stable spec with one ``spec.canary[]`` entry. The versions come from the
object's annotations, so a split can be picked up by anyone (the deploy step, ``churn rollout``)
from the cluster alone. Every change is a JSON merge patch (RFC 7386), what
``patch_namespaced_custom_object`` sends for a dict body.
"""

from __future__ import annotations

import copy
from typing import Any

from churn.deploy import (
    CANARY_VERSION,
    GROUP,
    PLURAL,
    STABLE_VERSION,
    VERSION,
    VERSION_LABEL,
    CustomObjects,
    ServingTarget,
    canary_abort_patch,
    inference_service,
    read_inference_service,
    replacing_patch,
)
from churn.errors import ChurnError
from churn.rollout.decisions import TrafficState


class KServeTraffic:
    """:class:`~churn.rollout.decisions.TrafficSplit` over one InferenceService.

    Args:
        api: ``kubernetes.client.CustomObjectsApi`` (or anything with its three calls).
        target: The serving target (name, namespace, modes); a promotion renders the full
            manifest of the canary version from it.

    """

    def __init__(self, api: CustomObjects, target: ServingTarget) -> None:
        self.api, self.target = api, target

    def state(self) -> TrafficState:
        """Who serves what now (the versions from the object's annotations and label)."""
        return traffic_state(self._read())

    def set_canary_percent(self, percent: int) -> None:
        """Send ``percent`` of the traffic to the canary.

        Raises:
            ChurnError: ``percent`` is outside 0..100, or there is no canary.

        """
        if not 0 <= percent <= 100:
            raise ChurnError(f"a canary takes 0..100 percent of the traffic, not {percent}")
        current = self._read()
        spec = current["spec"]
        if spec.get("canary"):
            entries = copy.deepcopy(spec["canary"])  # a merge patch replaces a list whole
            entries[0]["trafficPercent"] = percent
            self._patch({"spec": {"canary": entries}})
        elif _is_knative_canary(current):
            self._patch({"spec": {key: {"canaryTrafficPercent": percent} for key in spec}})
        else:
            raise ChurnError(f"InferenceService {self._where} has no canary to send traffic to")

    def promote(self) -> None:
        """Make the canary the stable version with all the traffic: its full manifest, no canary left.

        Raises:
            ChurnError: There is no canary.

        """
        current = self._read()
        canary = current["metadata"].get("annotations", {}).get(CANARY_VERSION)
        if not canary:
            raise ChurnError(f"InferenceService {self._where} has no canary to promote")
        spec = current["spec"]
        predictor = spec["canary"][0]["predictor"] if spec.get("canary") else spec["predictor"]
        full = inference_service(self.target, predictor["model"]["storageUri"], model_version=canary)
        full["metadata"]["annotations"][STABLE_VERSION] = canary
        self._patch(replacing_patch(full, current))

    def abort(self) -> None:
        """Send all the traffic back to the stable version (Standard: the entry goes; Knative: 0%).

        Without a canary there is nothing to do, and nothing is sent.
        """
        patch = canary_abort_patch(self._read())
        if patch is not None:
            self._patch(patch)

    @property
    def _where(self) -> str:
        return f"{self.target.namespace}/{self.target.name}"

    def _read(self) -> dict[str, Any]:
        current = read_inference_service(self.api, self.target.namespace, self.target.name)
        if current is None:
            raise ChurnError(f"there is no InferenceService {self._where}")
        return current

    def _patch(self, patch: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object(GROUP, VERSION, self.target.namespace, PLURAL, self.target.name, patch)


def traffic_state(current: dict[str, Any]) -> TrafficState:
    """Who serves what in an InferenceService object (both deployment modes)."""
    meta = current.get("metadata", {})
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    stable = str(annotations.get(STABLE_VERSION) or labels.get(VERSION_LABEL, ""))
    canary = annotations.get(CANARY_VERSION)
    spec = current.get("spec", {})
    if not canary:
        return TrafficState(stable, None, 0)
    if spec.get("canary"):
        return TrafficState(stable, str(canary), int(spec["canary"][0].get("trafficPercent", 0)))
    if _is_knative_canary(current):
        return TrafficState(stable, str(canary), int(spec["predictor"]["canaryTrafficPercent"]))
    return TrafficState(stable, None, 0)  # a Standard canary whose entry went (aborted)


def _is_knative_canary(current: dict[str, Any]) -> bool:
    return "canaryTrafficPercent" in current.get("spec", {}).get("predictor", {})


def cluster_api() -> CustomObjects:
    """``CustomObjectsApi`` of the cluster this runs in, else of the current kubeconfig context."""
    from kubernetes import client, config  # the Kubernetes client: only where a cluster is talked to

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api: CustomObjects = client.CustomObjectsApi()
    return api
