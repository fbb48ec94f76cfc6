"""A stand-in for the Kubernetes API's ``CustomObjectsApi``: what the deploy step and the rollout talk to.

There is no API server on this machine. The stand-in keeps objects by name, applies patches
as the API server does (RFC 7386 JSON merge patch), records every call, and plays KServe's
status: an object becomes Ready after ``ready_after`` reads (never when None); a Standard
canary's entries likewise, while the stable predictor keeps the service's Ready condition.
"""

from __future__ import annotations

import copy
from typing import Any


class NotFoundError(Exception):
    status = 404


class StandInCustomObjects:
    """Records calls; becomes Ready after ``ready_after`` reads of a new storageUri (never when None)."""

    def __init__(self, existing: dict[str, Any] | None = None, ready_after: int | None = 1) -> None:
        self.objects = {} if existing is None else {existing["metadata"]["name"]: copy.deepcopy(existing)}
        self.calls: list[tuple[str, Any]] = []
        self.ready_after, self.reads = ready_after, 0

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> Any:
        if name not in self.objects:
            raise NotFoundError()
        self.reads += 1
        obj = copy.deepcopy(self.objects[name])
        ready = self.ready_after is not None and self.reads > self.ready_after
        if obj["spec"].get("canary"):  # a Standard canary: the stable predictor keeps the service Ready meanwhile
            obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
            obj["status"]["canaryStatuses"] = [{"ready": ready} for _ in obj["spec"]["canary"]]
        elif ready:
            obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        return obj

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, body: Any) -> Any:
        self.calls.append(("create", body))
        self.objects[body["metadata"]["name"]] = copy.deepcopy(body)
        return body

    def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: Any
    ) -> Any:
        self.calls.append(("patch", body))
        self.objects[name] = merge_patch(self.objects[name], body)  # what the API server does with a merge patch
        return self.objects[name]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged
