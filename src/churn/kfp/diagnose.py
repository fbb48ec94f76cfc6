"""What a failed local run tells the user: the task that failed and, for a validation, its violations."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from churn.errors import ChurnError
from churn.kfp.logs import plain
from churn.validation.report import Violation

FAILED_TASK = re.compile(r"Inner task failed: '([\w-]+)'|Task '([\w-]+)' finished with status FAILURE")


class PipelineRunError(ChurnError):
    """A local pipeline run failed; the message names the task and, for a validation task, the violations.

    Attributes:
        task: The task that failed (None when KFP did not say).
        run_dir: The run's folder of task outputs.
        violations: The failed task's validation violations (empty when it was not a validation).

    """

    def __init__(self, message: str, task: str | None, run_dir: Path | None, violations: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.task = task
        self.run_dir = run_dir
        self.violations = violations


def failed_validation(run_dir: Path | None, task: str | None) -> dict[str, Any] | None:
    """The validation report a failed task wrote (its ``report`` output, ``valid: false``), if any."""
    if run_dir is None or task is None:
        return None
    try:
        found = json.loads((run_dir / task / "report").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("valid") is False else None


def failure(name: str, error: RuntimeError, run_dir: Path | None, log: Path | None) -> PipelineRunError:
    """The error of pipeline ``name``'s failed run, from what KFP raised and what the failed task left."""
    text = plain(str(error))
    match = FAILED_TASK.search(text)
    task = (match.group(1) or match.group(2)) if match else None
    report = failed_validation(run_dir, task)
    violations = [v for v in (report or {}).get("violations", []) if isinstance(v, dict)]
    lines = [f"{name} pipeline failed: task {task!r} failed" if task else f"{name} pipeline failed: {text}"]
    if report is not None:
        lines.append(
            f"{report.get('source', 'the data')}: {len(violations)} violation(s) in {report.get('rows', 0)} rows"
        )
        lines += [f"  - {violation_line(v)}" for v in violations]
    if run_dir is not None:
        lines.append(f"task outputs: {run_dir}")
    if log is not None:
        lines.append(f"task logs: {log}")
    return PipelineRunError("\n".join(lines), task, run_dir, violations)


def violation_line(violation: dict[str, Any]) -> str:
    """``column 'age' [in_range(18, 100)]: values outside [18, 100] (3 rows)``."""
    column = violation.get("column")
    found = Violation(
        str(violation.get("rule", "?")),
        str(violation.get("message", "")),
        None if column is None else str(column),
        int(violation.get("failed_rows") or 0),
    )
    return found.describe(rule=True, examples=False)
