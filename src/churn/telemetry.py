"""Usage telemetry of the libraries we run: off unless the user switches it on.

MLflow 3 sends usage data to its own endpoint from every process that imports it, unless
``MLFLOW_DISABLE_TELEMETRY`` or ``DO_NOT_TRACK`` is true or it sees a CI variable. Two reasons
to keep it off in our processes and images:

- An air-gapped or egress-restricted cluster blocks the call, and many organisations do not
  allow it at all.
- MLflow keeps its telemetry session id in ``os.environ`` and a background thread removes it
  when the telemetry endpoint cannot be reached; code that iterates ``os.environ`` at that moment
  (``requests``' proxy lookup does, on every call) fails with ``KeyError`` or
  ``RuntimeError: dictionary changed size during iteration``. A pipeline task failed that way.

``DO_NOT_TRACK`` is the cross-tool convention (Evidently's telemetry honours it too). A user who
wants MLflow's telemetry sets ``MLFLOW_DISABLE_TELEMETRY=false`` (the chart's
``telemetry.enabled: true``): once either variable is set, the user's choice stands.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

TELEMETRY_OFF: Mapping[str, str] = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
"""The variables that switch the stack's telemetry off, as the images and the chart set them."""


def telemetry_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The telemetry variables a process or container of ours should get.

    Args:
        environ: The environment to read the user's choice from (default: this process's).

    Returns:
        The user's own values when they set either variable, else ``TELEMETRY_OFF``.

    """
    current = os.environ if environ is None else environ
    chosen = {name: current[name] for name in TELEMETRY_OFF if name in current}
    return chosen or dict(TELEMETRY_OFF)


def telemetry_env_vars(environ: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """:func:`telemetry_environment` as a Kubernetes container's ``env`` entries (for the pods a task creates)."""
    return [{"name": name, "value": value} for name, value in telemetry_environment(environ).items()]


def telemetry_off_by_default(environ: MutableMapping[str, str] | None = None) -> None:
    """Switch telemetry off in this process unless the user chose otherwise.

    Entry points call it first, before anything imports MLflow: MLflow starts its telemetry
    client when it is imported.
    """
    target = os.environ if environ is None else environ
    target.update(telemetry_environment(target))
