"""What a finished monitoring run reports, in one line each: its verdict, its performance per cohort."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol


class PipelineRun(Protocol):
    """A finished pipeline run (a local run's :class:`churn.kfp.local.LocalRun`)."""

    @property
    def output(self) -> Any: ...

    @property
    def run_dir(self) -> Path | None: ...


def performance_lines(run: PipelineRun) -> list[str]:
    """One line per cohort from a monitoring run's performance report."""
    report = run.run_dir / "check-performance" / "report" if run.run_dir else None
    if report is None or not report.is_file():
        return ["(no performance report)"]
    found = json.loads(report.read_text())
    return list(found["lines"]) or [f"no predictions logged ({'; '.join(found['notes'])})"]


def monitoring_line(run: PipelineRun) -> str:
    """``alert (flagged: a, b)`` from a monitoring run's output and report."""
    report = run.run_dir / "check-drift" / "report" if run.run_dir else None
    if report is None or not report.is_file():
        return str(run.output)
    found = json.loads(report.read_text())
    lists = (("flagged", "flagged"), ("warned", "warn"))
    details = [f"{name}: {', '.join(found[key])}" for key, name in lists if found[key]]
    others = {check: level for check, level in found["levels"].items() if check != "feature_drift"}
    details += [f"{check} {level}" for check, level in others.items() if level != "ok"]
    return f"{found['verdict']}" + (f" ({'; '.join(details)})" if details else "")
