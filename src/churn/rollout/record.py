"""Where a rollout's decisions become visible: MLflow tags, Pushgateway metrics, a Markdown table.

Each recorder implements :class:`~churn.rollout.decisions.RolloutRecorder`. ``Recorders``
fans one rollout out to several and keeps going when one of them cannot be reached: a
Pushgateway that is down must not stop a rollout (its failure is logged and said in the
Markdown). :func:`restore_champion` moves ``@champion`` back after a rollback, as the
promotion gate's MLflow user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from churn.errors import ChurnError
from churn.monitoring.publish import push_registry
from churn.registry.mlflow_registry import CHAMPION, mlflow_identity
from churn.rollout.decisions import RolloutRecorder, RolloutResult, RolloutStatus, StepRecord
from churn.storage import atomic_path

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

#: The MLflow tags on the canary's model version.
STATUS_TAG, STEP_TAG, REASON_TAG = "rollout.status", "rollout.step", "rollout.reason"
#: An operator's word (``churn rollout promote|abort``), read by a running rollout.
OVERRIDE_TAG = "rollout.override"
#: The Pushgateway job of the rollout's metrics (one group: the latest rollout replaces the previous).
ROLLOUT_JOB = "churn-rollout"
#: ``churn_rollout_status``: where the rollout is, as a number an alert and a panel can read.
STATUS_CODES: dict[RolloutStatus, int] = {"progressing": 0, "promoted": 1, "rolled_back": 2}


class Recorders:
    """Several recorders as one; a recorder that fails is logged and skipped, never stops the rollout."""

    def __init__(self, *recorders: RolloutRecorder) -> None:
        self.recorders = recorders

    def step(self, result: RolloutResult, record: StepRecord) -> None:
        """Every recorder sees the step."""
        for recorder in self.recorders:
            with _logged(recorder, "step"):
                recorder.step(result, record)

    def finished(self, result: RolloutResult) -> None:
        """Every recorder sees the end."""
        for recorder in self.recorders:
            with _logged(recorder, "end"):
                recorder.finished(result)


@contextmanager
def _logged(recorder: RolloutRecorder, what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # a recorder (MLflow, the Pushgateway) down must not stop the rollout itself
        log.warning("could not record the rollout's %s with %s: %s", what, type(recorder).__name__, exc)


def step_label(record: StepRecord) -> str:
    """``2 (50%)``: the step and its canary percent."""
    return f"{record.step} ({record.percent}%)"


class MlflowTags:
    """``rollout.status``, ``rollout.step``, ``rollout.reason`` on the canary's model version.

    MLflow must be connected already (the caller's ``connect_registry``).

    Args:
        model_name: The registered model.
        version: The canary's version.
        identity: (user, password) to tag as; (None, None) = the process's own.

    """

    def __init__(self, model_name: str, version: str, *, identity: tuple[str | None, str | None] = (None, None)):
        self.model_name, self.version, self.identity = model_name, version, identity

    def step(self, result: RolloutResult, record: StepRecord) -> None:
        """Tag where the rollout is."""
        reason = record.analysis.reason if record.analysis else result.reason
        self._tag({STATUS_TAG: result.status, STEP_TAG: step_label(record), REASON_TAG: reason})

    def finished(self, result: RolloutResult) -> None:
        """Tag how it ended and why."""
        tags = {STATUS_TAG: result.status, REASON_TAG: result.reason}
        if result.steps:
            tags[STEP_TAG] = step_label(result.steps[-1])
        self._tag(tags)

    def _tag(self, tags: dict[str, str]) -> None:
        tag_version(self.model_name, self.version, tags, identity=self.identity)


def tag_version(
    model_name: str, version: str, tags: dict[str, str], *, identity: tuple[str | None, str | None] = (None, None)
) -> None:
    """Set ``tags`` on a model version (MLflow connected already), as ``identity``."""
    from mlflow import MlflowClient  # heavy: only a recording task pays for it

    with mlflow_identity(*identity):
        client = MlflowClient()
        for key, value in tags.items():
            client.set_model_version_tag(model_name, version, key, value[:5000])


class PushgatewayMetrics:
    """``churn_rollout_*`` gauges, pushed after every step and at the end (the group holds the latest rollout).

    ``churn_rollout_status`` (0 progressing, 1 promoted, 2 rolled back), ``churn_rollout_step``,
    ``churn_rollout_canary_percent``, ``churn_rollout_rolled_back`` (1 once this rollout rolled
    back: the alert's event), ``churn_rollout_last_change_timestamp_seconds``, and per check
    ``churn_rollout_check_value``/``_threshold``/``_passed`` (``passed`` -1 when there was too
    little evidence). Every gauge has the ``model_name`` label; ``churn_rollout_info`` also
    names the two versions.
    """

    def __init__(self, gateway: str, model_name: str, *, job: str = ROLLOUT_JOB, timeout: float = 10) -> None:
        self.gateway, self.model_name, self.job, self.timeout = gateway, model_name, job, timeout

    def step(self, result: RolloutResult, record: StepRecord) -> None:
        """Push the state after a step."""
        self._push(result, record)

    def finished(self, result: RolloutResult) -> None:
        """Push how it ended."""
        self._push(result, result.steps[-1] if result.steps else None)

    def _push(self, result: RolloutResult, record: StepRecord | None) -> None:
        push_registry(
            self.gateway, rollout_registry(self.model_name, result, record), job=self.job, timeout=self.timeout
        )


def rollout_registry(model_name: str, result: RolloutResult, record: StepRecord | None) -> CollectorRegistry:
    """The ``churn_rollout_*`` gauges after ``record`` (None: before the first step), in a fresh registry."""
    from prometheus_client import CollectorRegistry, Gauge  # the Pushgateway client, only when pushing

    registry = CollectorRegistry()
    model = ("model_name",)

    def gauge(name: str, doc: str, labels: tuple[str, ...] = model) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    info = gauge("churn_rollout_info", "The rollout's versions (always 1).", (*model, "canary", "stable"))
    info.labels(model_name, result.canary_version, result.stable_version).set(1)
    status = gauge("churn_rollout_status", "0 progressing, 1 promoted, 2 rolled back.")
    status.labels(model_name).set(STATUS_CODES[result.status])
    rolled_back = gauge("churn_rollout_rolled_back", "1 when the rollout rolled back (the alert's event).")
    rolled_back.labels(model_name).set(int(result.status == "rolled_back"))
    changed = gauge("churn_rollout_last_change_timestamp_seconds", "When the rollout last changed (unix s).")
    changed.labels(model_name).set(time.time())
    step = gauge("churn_rollout_step", "The step the rollout is at (1-based; 0 before the first).")
    step.labels(model_name).set(record.step if record else 0)
    percent = {"promoted": 100, "rolled_back": 0}.get(result.status, record.percent if record else 0)
    canary = gauge("churn_rollout_canary_percent", "Share of the traffic the canary gets (percent).")
    canary.labels(model_name).set(percent)
    if record is not None and record.analysis is not None:
        check = (*model, "check")
        value = gauge("churn_rollout_check_value", "A check's value at the last analysis.", check)
        threshold = gauge("churn_rollout_check_threshold", "A check's threshold.", check)
        passed = gauge("churn_rollout_check_passed", "1 passed, 0 failed, -1 too little evidence.", check)
        for c in record.analysis.checks:
            if c.value is not None:
                value.labels(model_name, c.name).set(c.value)
            threshold.labels(model_name, c.name).set(c.threshold)
            passed.labels(model_name, c.name).set(-1 if c.passed is None else int(c.passed))
    return registry


class MarkdownTable:
    """The per-step table, written to ``path`` after every step and at the end (the KFP Markdown artifact)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def step(self, result: RolloutResult, record: StepRecord) -> None:
        """Rewrite the table with the step."""
        self._write(result)

    def finished(self, result: RolloutResult) -> None:
        """Rewrite the table with the outcome."""
        self._write(result)

    def _write(self, result: RolloutResult) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_text(rollout_markdown(result), encoding="utf-8")


def rollout_markdown(result: RolloutResult) -> str:
    """The rollout as Markdown: the outcome and why, then one row per step with every check's numbers."""
    lines = [
        f"# Rollout of {result.model_name} v{result.canary_version} (stable v{result.stable_version}): "
        f"**{result.status.replace('_', ' ')}**",
        "",
        result.reason,
        "",
        "| step | canary % | verdict | canary requests | stable requests | checks | reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for record in result.steps:
        a = record.analysis
        if a is None:
            lines.append(f"| {record.step} | {record.percent} | – | – | – | – | – |")
            continue
        checks = "<br>".join(_check_cell(c.name, c.value, c.threshold, c.passed) for c in a.checks)
        lines.append(
            f"| {record.step} | {record.percent} | {a.verdict} | {a.canary_requests:.0f} | {a.stable_requests:.0f} "
            f"| {checks or '–'} | {_cell(a.reason)} |"
        )
    return "\n".join(lines) + "\n"


def _check_cell(name: str, value: float | None, threshold: float, passed: bool | None) -> str:
    mark = {True: "✅", False: "❌", None: "…"}[passed]
    shown = "n/a" if value is None else f"{value:.4g}"
    return f"{mark} {name} {shown} (≤ {threshold:.4g})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def restore_champion(
    model_name: str, canary_version: str, stable_version: str, *, identity: tuple[str | None, str | None]
) -> bool:
    """Move ``@champion`` back to ``stable_version`` if it still names the rolled-back canary.

    As the promotion gate's MLflow user (only it may move the alias). An alias that has moved
    on since (a newer promotion) is left alone. Returns whether the alias moved.

    Raises:
        ChurnError: MLflow refused or could not be reached (the caller says the alias may be wrong).

    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with mlflow_identity(*identity):
        client = MlflowClient()
        try:
            current = str(client.get_model_version_by_alias(model_name, CHAMPION).version)
            if current != canary_version:
                return False
            client.set_registered_model_alias(model_name, CHAMPION, stable_version)
        except MlflowException as exc:
            raise ChurnError(
                f"could not move @champion of {model_name} back to v{stable_version} after the rollback: {exc}"
            ) from exc
    return True


def previous_champion(model_name: str, version: str) -> str | None:
    """The champion before ``version``: the latest earlier version the gate promoted and no rollout rolled back.

    What the stable side of a rollout is when no cluster says it (the deploy step's local mode).
    """
    from mlflow import MlflowClient

    earlier = [
        v
        for v in MlflowClient().search_model_versions(f"name = '{model_name}'")
        if int(v.version) < int(version)
        and v.tags.get("gate_decision") == "promoted"
        and v.tags.get(STATUS_TAG) != "rolled_back"
    ]
    return str(max(int(v.version) for v in earlier)) if earlier else None
