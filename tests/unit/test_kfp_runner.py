"""What a failed local pipeline run tells the user, and how a run finds its own folder (no pipeline runs here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from churn.kfp.diagnose import PipelineRunError, failure
from churn.kfp.logs import plain, strip_colours
from churn.kfp.patches import own_run_folder

pytestmark = pytest.mark.unit

# What KFP's local runner raises, colours included, whatever the output is.
KFP_ERROR = (
    "Pipeline \x1b[95m'churn-monitoring'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m. "
    "Inner task failed: \x1b[96m'validate-current'\x1b[0m."
)


def _run_dir(tmp_path: Path, report: dict[str, object] | None) -> Path:
    run_dir = tmp_path / "churn-monitoring-2026-01-08-06-00-01-000001"
    (run_dir / "validate-current").mkdir(parents=True)
    if report is not None:
        (run_dir / "validate-current" / "report").write_text(json.dumps(report))
    return run_dir


def test_a_failed_validation_lists_its_violations_without_colour_codes(tmp_path: Path) -> None:
    report = {
        "valid": False,
        "source": "/data/in/customers_20260108.csv",
        "rows": 1000,
        "violations": [
            {"rule": "in_range(18, 100)", "message": "values outside [18, 100]", "column": "age", "failed_rows": 3},
            {"rule": "repeated_header", "message": "the header line is repeated at line 7", "column": None},
        ],
    }
    run_dir = _run_dir(tmp_path, report)
    error = failure("monitoring", RuntimeError(KFP_ERROR), run_dir, tmp_path / "run.log")
    assert isinstance(error, PipelineRunError) and error.task == "validate-current" and error.run_dir == run_dir
    assert str(error).splitlines() == [
        "monitoring pipeline failed: task 'validate-current' failed",
        "/data/in/customers_20260108.csv: 2 violation(s) in 1000 rows",
        "  - column 'age' [in_range(18, 100)]: values outside [18, 100] (3 rows)",
        "  - file [repeated_header]: the header line is repeated at line 7",
        f"task outputs: {run_dir}",
        f"task logs: {tmp_path / 'run.log'}",
    ]
    assert len(error.violations) == 2


@pytest.mark.parametrize("report", [None, {"valid": True, "violations": []}, "not json"], ids=["none", "valid", "bad"])
def test_other_failures_name_the_task_only(tmp_path: Path, report: object) -> None:
    run_dir = _run_dir(tmp_path, None)
    if report is not None:
        text = report if isinstance(report, str) else json.dumps(report)
        (run_dir / "validate-current" / "report").write_text(text)
    error = failure("monitoring", RuntimeError(KFP_ERROR), run_dir, None)
    assert str(error).splitlines() == [
        "monitoring pipeline failed: task 'validate-current' failed",
        f"task outputs: {run_dir}",
    ]
    assert error.violations == []


def test_an_unrecognised_failure_keeps_kfps_words_without_colours() -> None:
    error = failure("data", RuntimeError("\x1b[91mboom\x1b[0m"), None, None)
    assert str(error) == "data pipeline failed: boom" and error.task is None


def test_the_log_is_rewritten_without_colour_codes(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(KFP_ERROR + "\nplain line\n")
    strip_colours(log)
    assert log.read_text() == plain(KFP_ERROR) + "\nplain line\n" and "\x1b" not in log.read_text()


def test_each_run_records_the_folder_kfp_names_for_it() -> None:
    from kfp.local import executor_input_utils

    original = executor_input_utils.get_local_pipeline_resource_name
    found: list[str] = []
    with own_run_folder(found):
        first = executor_input_utils.get_local_pipeline_resource_name("churn-monitoring")
    assert found == [first] and first.startswith("churn-monitoring-")
    assert executor_input_utils.get_local_pipeline_resource_name is original  # restored
