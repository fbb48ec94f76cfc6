"""Short pipeline runs the components tests share: publish a day, monitor it, read a task's output."""

from __future__ import annotations

import json
from typing import Any

from churn.config import Settings
from churn.kfp.local import LocalRun, local_parameters, run_local


def publish_day(settings: Settings, date: str, scenario: str) -> str:
    """Run the daily data pipeline for ``date`` (a generator scenario); return the published increment."""
    run = run_local(
        "data",
        settings,
        log=settings.data_dir / "data.log",
        **local_parameters(settings, "data", date=date, scenario=scenario, seed=int(date.replace("-", ""))),
    )
    return str(run.output)


def run_monitoring(settings: Settings, current: str, **overrides: Any) -> LocalRun:
    """Run the monitoring pipeline on ``current`` with the settings' defaults and ``overrides``."""
    return run_local(
        "monitoring",
        settings,
        log=settings.data_dir / "monitoring.log",
        **local_parameters(settings, "monitoring", current_uri=current, **overrides),
    )


def task_output(run: LocalRun, task: str) -> Any:
    """The ``Output`` parameter a task of ``run`` returned."""
    assert run.run_dir is not None
    return json.loads((run.run_dir / task / "executor_output.json").read_text())["parameterValues"]["Output"]
