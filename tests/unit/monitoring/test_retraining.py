"""The retraining decision: alerts on the champion's own cohorts, the running rule, the cooldown, the record.

``retraining_reason`` is a pure function of the facts; ``retrain_on_alert`` gathers them (the
record in a real data folder, a KFP run's state from a recording stand-in of ``kfp.Client``,
since no KFP backend runs here) and records what it starts.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from churn.errors import ChurnError
from churn.kfp.retrain import STALE_LOCAL_RUN, retrain_on_alert, retraining_running
from churn.monitoring.retraining import RetrainingRecord, read_record, record_location, write_record
from churn.stages.monitoring import retraining_reason

pytestmark = pytest.mark.unit
DAY = dt.date(2026, 1, 20)
OK = {"realized": "ok", "estimated": "ok", "labels": "ok"}
ALERT = {"realized": "alert", "estimated": "ok", "labels": "ok"}


def performance(champion: str | None, **by_version: dict[str, str]) -> dict[str, Any]:
    """The fields of a performance report the decision reads."""
    levels = {c: max((v[c] for v in by_version.values()), key=["ok", "warn", "alert"].index) for c in OK}
    return {"champion_version": champion, "levels": levels, "levels_by_version": by_version}


def record(day: dt.date, status: str = "promoted", run: str = "", hours_ago: float = 1.0) -> RetrainingRecord:
    started = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)
    return RetrainingRecord(day, started.isoformat(timespec="seconds"), "drift alert", "1", "local", status, run)


def test_no_alert_no_retraining_and_only_the_realized_level_counts() -> None:
    quiet = {"realized": "ok", "estimated": "alert", "labels": "alert"}
    assert not retraining_reason("ok", {"champion_version": None, "levels": quiet}).retrain
    assert retraining_reason("warn", {"levels": {"realized": "warn"}}).reason == ""
    assert retraining_reason("alert", None).reason == "drift alert"
    assert retraining_reason("ok", {"levels": {"realized": "alert"}}).reason == "realized performance alert"
    both = retraining_reason("alert", {"levels": {"realized": "alert"}}, today=DAY)
    assert both.reason == "drift alert and realized performance alert" and both.retrain
    assert both.summary() == "drift alert and realized performance alert: retraining"
    assert both.metrics() == {"retraining_started": 1.0, "retraining_skipped": 0.0}


def test_only_the_champions_cohorts_count() -> None:
    """Version 1's cohorts still alert in the window after version 2 took over: that no longer retrains."""
    old_alert = retraining_reason("ok", performance("2", **{"1": ALERT, "2": OK}), today=DAY)
    assert not old_alert.retrain and old_alert.reason == ""
    assert old_alert.skipped == "realized alert only on cohorts of version 1, not the champion's (2)"
    assert (
        "# Retraining: not needed" in old_alert.markdown() and "version 1, not the champion's" in old_alert.markdown()
    )
    own = retraining_reason("ok", performance("2", **{"1": ALERT, "2": ALERT}), today=DAY)
    assert own.retrain and own.reason == "realized performance alert on the champion's cohorts (version 2)"
    # A champion with no cohort of its own yet (its labels have not arrived): nothing to judge.
    fresh = retraining_reason("ok", performance("3", **{"1": ALERT, "2": OK}), today=DAY)
    assert not fresh.retrain and "cohorts of version 1, not the champion's (3)" in fresh.skipped
    # A drift alert is about the champion's own reference: it still counts.
    assert retraining_reason("alert", performance("2", **{"1": ALERT, "2": OK}), today=DAY).retrain


@pytest.mark.parametrize(
    ("days_before", "cooldown", "held"),
    [(0, 7, True), (6, 7, True), (7, 7, False), (30, 7, False), (0, 0, False), (1, 1, False), (-3, 7, True)],
    ids=["same-day", "last-day-of-cooldown", "cooldown-over", "long-ago", "off", "one-day-over", "back-filled-run"],
)
def test_cooldown_boundaries(days_before: int, cooldown: int, held: bool) -> None:
    last = record(DAY - dt.timedelta(days=days_before))
    decision = retraining_reason("alert", None, last=last, today=DAY, cooldown_days=cooldown)
    assert decision.retrain is not held and decision.days_since_last == days_before
    assert decision.skipped.startswith("cooldown: ") is held
    if held:
        assert decision.summary().startswith("drift alert, but cooldown: the last retraining started on")
        assert decision.metrics()["retraining_skipped"] == 1.0 and "# Retraining: skipped" in decision.markdown()


def test_a_running_retraining_holds_back_the_next_even_after_the_cooldown() -> None:
    last = record(DAY - dt.timedelta(days=30), status="submitted", run="KFP run r-1")
    decision = retraining_reason("alert", None, last=last, running=True, today=DAY, cooldown_days=7)
    assert not decision.retrain
    assert decision.skipped == "the retraining started on 2025-12-21 (KFP run r-1) is still running or rolling out"
    assert retraining_reason("alert", None, last=last, running=False, today=DAY, cooldown_days=7).retrain


class StandInKfp:
    """A recording stand-in for ``kfp.Client``: submitted runs, and the state each is in."""

    states: ClassVar[dict[str, str]] = {}
    submitted: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, host: str | None = None) -> None:
        self.host = host

    def create_run_from_pipeline_package(self, pipeline_file: str, **kwargs: Any) -> Any:
        spec = next(yaml.safe_load_all(Path(pipeline_file).read_text()))
        run_id = f"run-{len(self.submitted) + 1}"
        type(self).submitted.append({"pipeline": spec["pipelineInfo"]["name"], "run_id": run_id, **kwargs})
        type(self).states[run_id] = "RUNNING"
        return type("Run", (), {"run_id": run_id})()

    def get_run(self, run_id: str) -> Any:
        if run_id not in self.states:
            raise ConnectionError("no such run")
        return type("Run", (), {"state": self.states[run_id]})()


def test_whether_the_last_retraining_still_runs() -> None:
    StandInKfp.states = {"r-1": "RUNNING", "r-2": "SUCCEEDED", "r-3": "FAILED", "r-4": "PENDING"}
    assert not retraining_running(None)
    assert retraining_running(record(DAY, status="running"))  # a local run that has not written its outcome
    assert not retraining_running(record(DAY, status="running", hours_ago=STALE_LOCAL_RUN.total_seconds() / 3600 + 1))
    assert not retraining_running(record(DAY, status="promoted"))
    for run, running in (("r-1", True), ("r-2", False), ("r-3", False), ("r-4", True), ("r-missing", True)):
        kfp = record(DAY, status="submitted", run=f"KFP run {run}")
        assert retraining_running(kfp, client_factory=StandInKfp) is running, run


def test_the_record_round_trips_and_a_broken_one_is_named(tmp_path: Path) -> None:
    assert read_record(tmp_path) is None
    written = record(DAY, status="submitted", run="KFP run r-9")
    assert write_record(tmp_path, written) == str(tmp_path / "retraining.json")
    assert read_record(tmp_path) == written
    assert json.loads((tmp_path / "retraining.json").read_text())["day"] == "2026-01-20"
    record_location(tmp_path).path.write_text('{"day": "yesterday"}')
    with pytest.raises(ChurnError, match="is not a retraining record"):
        read_record(tmp_path)


def test_retrain_on_alert_records_a_kfp_run_and_holds_back_while_it_runs_then_for_the_cooldown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five daily runs on a KFP backend, all with a drift alert: one submission, then 'running', then the cooldown."""
    monkeypatch.setenv("CHURN_MONITORING__RETRAINING_RECORD_URI", str(tmp_path / "state"))
    monkeypatch.setenv("CHURN_MONITORING__RETRAIN_COOLDOWN_DAYS", "3")
    StandInKfp.states, StandInKfp.submitted = {}, []
    outcomes = []
    for offset in range(5):
        if offset == 2:
            StandInKfp.states["run-1"] = "SUCCEEDED"  # the run (and its rollout) ended between day 1 and day 2
        day = DAY + dt.timedelta(days=offset)
        decision, started = retrain_on_alert(
            "alert", None, {"rows": 1_000}, mode="kfp", as_of=day.isoformat(), client_factory=StandInKfp
        )
        outcomes.append((started, decision.skipped.split(":")[0].split(" (")[0]))
    assert [s for s, _ in outcomes] == ["KFP run run-1", "", "", "KFP run run-2", ""]
    assert outcomes[1][1] == "the retraining started on 2026-01-20"  # still running on day 1
    assert outcomes[2][1] == "cooldown"  # run-1 ended; 2 of the 3 cooldown days gone
    assert outcomes[4][1] == "the retraining started on 2026-01-23"  # run-2 runs: that rule comes first
    assert [call["pipeline"] for call in StandInKfp.submitted] == ["churn-training", "churn-training"]
    last = read_record(tmp_path / "state")
    assert last is not None and (last.day, last.status, last.run) == (
        DAY + dt.timedelta(days=3),
        "submitted",
        "KFP run run-2",
    )


def test_a_failed_local_retraining_is_recorded_as_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_MONITORING__RETRAINING_RECORD_URI", str(tmp_path))
    with pytest.raises(ChurnError, match="the retraining run failed"):  # the training pipeline takes no such parameter
        retrain_on_alert("alert", None, {"no_such_parameter": 1}, as_of="2026-01-20")
    failed = read_record(tmp_path)
    assert failed is not None and failed.status == "failed" and failed.reason == "drift alert"
    assert not retraining_running(failed)  # a failed run does not hold back the next one
