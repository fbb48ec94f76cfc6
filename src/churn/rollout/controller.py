"""The rollout loop: step the canary's traffic up, judge each step, promote or roll back.

One function, :func:`run_rollout`, drives any :class:`~churn.rollout.decisions.TrafficSplit`
(an InferenceService in a cluster, the local weighted router on a laptop) with any analysis
(Prometheus in both). It never promotes blind: a step is judged only on a "pass"; a "wait"
(too little traffic, no Prometheus, an analysis that raised) holds the step and asks again
each interval until the rollout's deadline, then rolls back. An operator's word (``overrule``)
is polled while a step runs and wins over the analysis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from churn.rollout.decisions import (
    CheckResult,
    RolloutRecorder,
    RolloutResult,
    StepAnalysis,
    StepRecord,
    TrafficSplit,
)

if TYPE_CHECKING:
    from churn.config import RolloutSettings

#: An operator's word on a running rollout, or None to let the analysis decide.
Overrule = Literal["promote", "abort"] | None
#: The analysis of one step: (canary version, stable version, window in seconds) -> what it found.
Analyse = Callable[[str, str, float], StepAnalysis]
#: How often the loop looks for an operator's word while a step runs, at most.
OVERRULE_POLL_SECONDS = 5.0


def run_rollout(
    traffic: TrafficSplit,
    analyse: Analyse,
    settings: RolloutSettings,
    *,
    model_name: str,
    recorder: RolloutRecorder | None = None,
    overrule: Callable[[], Overrule] = lambda: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> RolloutResult:
    """Roll the canary ``traffic`` holds out in ``settings.steps``, judging each step; promote or roll back.

    Args:
        traffic: Who serves what; its state names the stable and the canary version.
        analyse: Compares canary and stable over the last window (see :mod:`churn.rollout.analysis`).
        settings: Steps, analysis interval, deadline.
        model_name: The registered model (for the record).
        recorder: Told about every judged step and the end.
        overrule: Polled while a step runs: ``"promote"`` or ``"abort"`` ends the rollout that way at once.
        sleep: Waits (a test passes a fake clock's).
        clock: Unix seconds now.

    Returns:
        What happened: ``promoted`` or ``rolled_back``, the reason and every step.

    Raises:
        ValueError: The traffic has no canary to roll out.

    """
    state = traffic.state()
    if state.canary_version is None:
        raise ValueError(f"{model_name}: there is no canary to roll out (stable version {state.stable_version})")
    canary, stable = state.canary_version, state.stable_version
    result = RolloutResult(model_name, canary, stable, "progressing", "")
    deadline = clock() + settings.deadline_seconds
    interval = settings.analysis_interval_seconds
    for number, percent in enumerate(settings.steps, start=1):
        if percent == 100:
            break  # the last step is the promotion itself: nothing is left to compare the canary with
        traffic.set_canary_percent(percent)
        started = clock()
        while True:
            word = _wait(interval, overrule, sleep, clock)
            if word is not None:
                return _end(traffic, recorder, result, word, f"an operator chose to {word} at {percent}%")
            analysis = _analysis(analyse, canary, stable, interval)
            record = StepRecord(number, percent, started, clock(), analysis)
            result = replace(result, steps=(*result.steps, record))
            if recorder is not None:
                recorder.step(result, record)
            if analysis.verdict == "pass":
                break
            if analysis.verdict == "fail":
                return _end(traffic, recorder, result, "abort", f"step {number} ({percent}%): {analysis.reason}")
            if clock() >= deadline:
                reason = (
                    f"no verdict within the deadline of {settings.deadline_seconds:.0f}s at step {number} "
                    f"({percent}%): {analysis.reason}"
                )
                return _end(traffic, recorder, result, "abort", reason)
    last = StepRecord(len(settings.steps), 100, clock(), clock(), None)
    result = replace(result, steps=(*result.steps, last))
    passed = len(result.steps) - 1
    return _end(
        traffic, recorder, result, "promote", f"every check passed at {passed} step(s); all traffic on v{canary}"
    )


def _wait(
    seconds: float, overrule: Callable[[], Overrule], sleep: Callable[[float], None], clock: Callable[[], float]
) -> Overrule:
    """Wait ``seconds``, looking for an operator's word at least every ``OVERRULE_POLL_SECONDS``."""
    until = clock() + seconds
    while True:
        word = overrule()
        if word is not None:
            return word
        left = until - clock()
        if left <= 0:
            return None
        sleep(min(left, OVERRULE_POLL_SECONDS))


def _analysis(analyse: Analyse, canary: str, stable: str, window: float) -> StepAnalysis:
    """The analysis, where one that raised is no verdict (it holds the step; the deadline rolls back)."""
    try:
        return analyse(canary, stable, window)
    except Exception as exc:  # any failure to judge holds the step; it must never promote
        failed = CheckResult("analysis", None, None, None, 0.0, None, f"{type(exc).__name__}: {exc}")
        return StepAnalysis("wait", (failed,), f"the analysis failed: {type(exc).__name__}: {exc}")


def _end(
    traffic: TrafficSplit,
    recorder: RolloutRecorder | None,
    result: RolloutResult,
    how: Literal["promote", "abort"],
    reason: str,
) -> RolloutResult:
    if how == "promote":
        traffic.promote()
        result = replace(result, status="promoted", reason=reason)
    else:
        traffic.abort()
        result = replace(result, status="rolled_back", reason=reason)
    if recorder is not None:
        recorder.finished(result)
    return result
