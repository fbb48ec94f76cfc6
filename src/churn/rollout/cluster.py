"""A progressive rollout in a cluster: the canary applied, stepped up, judged, promoted or rolled back.

:func:`roll_out` is the whole of it for the deploy stage: apply the canary manifest at the
first step and wait until KServe reports it Ready (``churn.deploy.apply``, which rolls a
canary that never gets Ready back), then let :func:`churn.rollout.controller.run_rollout`
step it through ``settings.steps`` with :class:`~churn.rollout.kserve.KServeTraffic`. After
a rollback, and after any failure on the way (the API server, the analysis, the process
being stopped), the traffic goes back to the stable version and ``@champion`` moves back to
it as the promotion gate's MLflow user: a failure never leaves a moved alias behind.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from churn.deploy import CustomObjects, ServingTarget, apply, canary_inference_service
from churn.rollout.analysis import Prometheus, analyse_step
from churn.rollout.controller import Analyse, Overrule, run_rollout
from churn.rollout.decisions import RolloutRecorder, RolloutResult, StepAnalysis
from churn.rollout.kserve import KServeTraffic
from churn.rollout.record import REASON_TAG, STATUS_TAG, restore_champion, tag_version

if TYPE_CHECKING:
    from churn.config import RolloutSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RolloutModels:
    """The two models of a rollout: the canary (the gate's new champion) and the stable one it replaces."""

    model_name: str
    version: str
    storage: str
    stable_version: str
    stable_storage: str


def canary_manifest(target: ServingTarget, models: RolloutModels, settings: RolloutSettings) -> dict[str, Any]:
    """The InferenceService with the canary at the first step's share of the traffic."""
    return canary_inference_service(
        target,
        models.storage,
        model_version=models.version,
        stable_storage=models.stable_storage,
        stable_version=models.stable_version,
        percent=settings.steps[0],
    )


def roll_out(
    api: CustomObjects,
    target: ServingTarget,
    models: RolloutModels,
    settings: RolloutSettings,
    *,
    analyse: Analyse,
    recorder: RolloutRecorder | None = None,
    overrule: Callable[[], Overrule] = lambda: None,
    identity: tuple[str | None, str | None] = (None, None),
    ready_timeout: float = 600,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> RolloutResult:
    """Apply the canary, wait Ready, run the rollout; roll ``@champion`` back with the traffic.

    Raises:
        ChurnError: The canary never became Ready (rolled back), or the Kubernetes API failed.
        Exception: Anything else that stopped the rollout, after the traffic and the alias went back.

    """
    traffic = KServeTraffic(api, target)
    with _sigterm_raises():
        try:
            apply(canary_manifest(target, models, settings), api, timeout=ready_timeout)
            result = run_rollout(
                traffic, analyse, settings, model_name=models.model_name, recorder=recorder,
                overrule=overrule, sleep=sleep, clock=clock,
            )  # fmt: skip
        except BaseException as exc:
            _back_to_stable(traffic, models, identity, f"the rollout stopped: {type(exc).__name__}: {exc}")
            raise
    if result.status == "rolled_back":
        restore_champion(models.model_name, models.version, models.stable_version, identity=identity)
    return result


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM (a KFP run cancelled, its pod deleted) raises SystemExit, so the clean-up above runs.

    Only the main thread can set a handler; elsewhere the default stays.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _back_to_stable(
    traffic: KServeTraffic, models: RolloutModels, identity: tuple[str | None, str | None], reason: str
) -> None:
    """After a failure: traffic to the stable version, ``@champion`` back, the version tagged; each step tried."""
    steps: list[tuple[str, Callable[[], object]]] = [
        ("send the traffic back to the stable version", traffic.abort),
        (
            "move @champion back",
            partial(restore_champion, models.model_name, models.version, models.stable_version, identity=identity),
        ),
        (
            "tag the version",
            partial(tag_version, models.model_name, models.version, {STATUS_TAG: "rolled_back", REASON_TAG: reason}),
        ),
    ]
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # one failed clean-up step must not keep the next from running
            log.error(
                "after a failed rollout of %s v%s: could not %s: %s", models.model_name, models.version, what, exc
            )


def prometheus_analysis(settings: RolloutSettings) -> Analyse:
    """The analysis the cluster runs: :func:`churn.rollout.analysis.analyse_step` against ``settings.prometheus_url``.

    Without a Prometheus URL every step gets "wait" with the reason, so the rollout holds
    until its deadline and then rolls back: it never promotes blind.
    """
    if not settings.prometheus_url:
        return partial(_no_verdict, "no Prometheus URL is set (CHURN_ROLLOUT__PROMETHEUS_URL)")
    step: Analyse = partial(analyse_step, Prometheus(settings.prometheus_url), settings=settings)
    return step


def _no_verdict(reason: str, canary_version: str, stable_version: str, window_seconds: float) -> StepAnalysis:
    return StepAnalysis("wait", (), reason)
