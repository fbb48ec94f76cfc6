"""The rollout loop on a recorded traffic split and scripted analyses, under a fake clock.

The traffic split and the clock are stand-ins (the loop's contract is what it does with
them); the real ones are exercised in tests/integration/test_rollout.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from churn.config import RolloutSettings
from churn.rollout.controller import run_rollout
from churn.rollout.decisions import CheckResult, RolloutResult, StepAnalysis, StepRecord, TrafficState

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


class Traffic:
    """Records what the loop asked of it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.percent = 0

    def state(self) -> TrafficState:
        return TrafficState("1", "2", self.percent)

    def set_canary_percent(self, percent: int) -> None:
        self.percent = percent
        self.calls.append(f"set {percent}")

    def promote(self) -> None:
        self.calls.append("promote")

    def abort(self) -> None:
        self.calls.append("abort")


class Recorder:
    def __init__(self) -> None:
        self.steps: list[StepRecord] = []
        self.ended: list[RolloutResult] = []

    def step(self, result: RolloutResult, record: StepRecord) -> None:
        assert result.status == "progressing" and result.steps[-1] == record
        self.steps.append(record)

    def finished(self, result: RolloutResult) -> None:
        self.ended.append(result)


def verdicts(*names: str) -> Iterator[StepAnalysis]:
    for name in names:
        check = CheckResult("p95 latency ratio", 30.0, 10.0, 3.0, 1.5, name != "fail")
        yield StepAnalysis(name, (check,), f"{name}: p95 latency ratio 3.0", 100, 100)  # type: ignore[arg-type]


def settings(**overrides: object) -> RolloutSettings:
    return RolloutSettings(analysis_interval_seconds=60, deadline_seconds=600, **overrides)  # type: ignore[arg-type]


def roll(
    script: Iterator[StepAnalysis], clock: Clock, traffic: Traffic, recorder: Recorder, **kw: object
) -> RolloutResult:
    asked: list[tuple[str, str, float, float]] = []

    def analyse(canary: str, stable: str, window: float) -> StepAnalysis:
        asked.append((canary, stable, window, clock.now))
        return next(script)

    result = run_rollout(
        traffic,
        analyse,
        kw.pop("rollout", settings()),
        model_name="churn-model",
        recorder=recorder,  # type: ignore[arg-type]
        sleep=clock.sleep,
        clock=clock.time,
        **kw,  # type: ignore[arg-type]
    )
    assert all(a[:3] == ("2", "1", 60) for a in asked), asked
    return result


def test_every_step_passing_promotes_after_one_interval_each() -> None:
    clock, traffic, recorder = Clock(), Traffic(), Recorder()
    result = roll(verdicts("pass", "pass"), clock, traffic, recorder)
    assert traffic.calls == ["set 10", "set 50", "promote"]
    assert result.status == "promoted" and [s.percent for s in result.steps] == [10, 50, 100]
    assert clock.now == pytest.approx(1_000 + 2 * 60)
    assert [s.percent for s in recorder.steps] == [10, 50] and recorder.ended == [result]


def test_a_failed_check_rolls_back_at_once_and_says_which_step_and_why() -> None:
    clock, traffic, recorder = Clock(), Traffic(), Recorder()
    result = roll(verdicts("pass", "fail"), clock, traffic, recorder)
    assert traffic.calls == ["set 10", "set 50", "abort"]
    assert result.status == "rolled_back" and result.reason.startswith("step 2 (50%): fail: p95 latency ratio 3.0")
    assert recorder.ended[0].status == "rolled_back"


def test_no_verdict_holds_the_step_then_rolls_back_at_the_deadline() -> None:
    clock, traffic, recorder = Clock(), Traffic(), Recorder()
    result = roll(verdicts(*["wait"] * 20), clock, traffic, recorder)
    assert traffic.calls == ["set 10", "abort"]  # never stepped up, never promoted
    assert result.status == "rolled_back" and "no verdict within the deadline of 600s at step 1 (10%)" in result.reason
    assert len(result.steps) == 10 and clock.now == pytest.approx(1_600)


def test_waiting_then_passing_goes_on() -> None:
    clock, traffic, recorder = Clock(), Traffic(), Recorder()
    result = roll(verdicts("wait", "pass", "wait", "wait", "pass"), clock, traffic, recorder)
    assert result.status == "promoted" and traffic.calls == ["set 10", "set 50", "promote"]


def test_an_analysis_that_raises_never_promotes() -> None:
    clock, traffic, recorder = Clock(), Traffic(), Recorder()

    class Unreachable:
        def __iter__(self) -> Unreachable:
            return self

        def __next__(self) -> StepAnalysis:
            raise ConnectionRefusedError("prometheus:9090")

    result = roll(Unreachable(), clock, traffic, recorder)
    assert result.status == "rolled_back" and traffic.calls[-1] == "abort" and "promote" not in traffic.calls
    assert "ConnectionRefusedError: prometheus:9090" in result.reason
    assert result.steps[0].analysis is not None and result.steps[0].analysis.checks[0].passed is None


@pytest.mark.parametrize("word", ["promote", "abort"])
def test_an_operators_word_wins_within_a_poll(word: str) -> None:
    clock, traffic, recorder = Clock(), Traffic(), Recorder()
    result = roll(verdicts("pass"), clock, traffic, recorder, overrule=lambda: word if clock.now >= 1_070 else None)
    assert traffic.calls == ["set 10", "set 50", word]
    assert result.status == ("promoted" if word == "promote" else "rolled_back")
    assert f"an operator chose to {word} at 50%" == result.reason and clock.now <= 1_075


def test_there_must_be_a_canary() -> None:
    traffic = Traffic()
    traffic.state = lambda: TrafficState("1", None, 0)  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="no canary to roll out"):
        run_rollout(traffic, lambda *a: next(verdicts("pass")), settings(), model_name="churn-model")
    assert traffic.calls == []


@pytest.mark.parametrize("steps", [[10, 50], [50, 10, 100], [0, 100], [10, 10, 100]])
def test_steps_must_climb_to_100(steps: list[int]) -> None:
    with pytest.raises(ValueError, match="steps must rise strictly"):
        RolloutSettings(steps=steps)
