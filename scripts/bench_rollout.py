"""Benchmark: how long a progressive rollout takes to promote a good canary and to roll a bad one back.

Everything is real and local, as in ``tests/integration/test_rollout.py`` (whose parts,
``tests/integration/rollout_lab.py``, this reuses): an XGBoost champion registered in a
sqlite MLflow store serves as the stable pair (predictor + transformer); each case starts
a canary pair serving another registered version; real V2 clients (tritonclient, HTTP,
3 threads, 16-row batches) send traffic through the weighted router (the laptop's stand-in
for Knative/Gateway traffic splitting); a real Prometheus scrapes every server each second;
the controller judges each step with the PromQL a cluster runs. The analysis interval is
scaled down (``--interval``, default 5 s; 300 s in production), so the times below are in
units of intervals plus the fixed costs of a step.

Cases: ``good`` (a retrained model) is promoted; ``errors`` (fails on a customer segment),
``slow`` (three times the stable's p95) and ``constant`` (one probability for everybody)
are rolled back; ``prometheus-down`` holds and rolls back at the deadline (two intervals).
Each row: outcome, seconds from the rollout's start (the promotion by the gate) to full
rollout or rollback, the analyses run (a "wait" adds one), the check that decided, and
what the clients saw.

Run: ``make bench-rollout`` (``.venv/bin/python scripts/bench_rollout.py --interval 5 --repeats 1``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "integration"), str(ROOT / "tests")]  # the lab's shared parts

from rollout_lab import CASES, CaseRun, closed_prometheus_url, running_lab  # noqa: E402
from rollout_lab import run_case as run_lab_case  # noqa: E402

from churn.config import RolloutSettings  # noqa: E402

NAME = "churn-model"
DOWN = "prometheus-down"


def register_champion(workdir: Path) -> tuple[Any, Any, str]:
    """Train an XGBoost champion, register it as ``churn-model@champion``; return it, fresh rows, the tracking URI."""
    import mlflow

    from churn.data import generate_customers
    from churn.registry.mlflow_registry import CHAMPION, connect, log_candidate, register_challenger
    from churn.training import split_frame, train_family

    tracking = f"sqlite:///{workdir}/mlflow.db"
    connect(tracking, experiment="bench-rollout", artifact_location=(workdir / "artifacts").as_uri())
    parts = split_frame(generate_customers(6_000, "2026-01-05", seed=21).frame, seed=3)
    params = {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.1, "early_stopping_rounds": 20}
    champion = train_family("xgboost", parts["train"], parts["validation"], params)
    with mlflow.start_run(run_name="champion"):
        uri = log_candidate(champion, example=parts["test"].head(3), metrics={}, tags={})
    mlflow.MlflowClient().set_registered_model_alias(NAME, CHAMPION, register_challenger(uri, NAME, tags={}))
    return champion, generate_customers(1_000, "2026-02-02", seed=99).frame, tracking


def decided_by(run: CaseRun) -> str:
    """The check that decided (with its value), or what held the rollout."""
    last = run.result.steps[-1].analysis if run.result.steps else None
    if run.result.status == "promoted" or last is None:
        return "every check passed"
    failed = [check for check in last.checks if check.passed is False]
    if not failed:
        return "no verdict until the deadline"
    return ", ".join(f"{check.name} {check.value or 0:.3g} > {check.threshold:g}" for check in failed)


def main() -> None:
    """Run every case ``--repeats`` times and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=5.0, help="Analysis interval, seconds (scaled down).")
    parser.add_argument("--repeats", type=int, default=1, help="Rollouts per case (the table gives the median).")
    args = parser.parse_args()
    from prometheus_helpers import prometheus_binaries

    from churn.telemetry import telemetry_off_by_default

    telemetry_off_by_default()
    base = {
        "steps": [10, 50, 100],
        "analysis_interval_seconds": args.interval,
        "deadline_seconds": 60,
        "min_requests": 20,
    }
    runs: dict[str, list[CaseRun]] = {case: [] for case in (*CASES, DOWN)}
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        workdir = Path(tmp)
        champion, rows, tracking = register_champion(workdir)
        binary = prometheus_binaries()["prometheus"]
        with running_lab(champion, rows, tracking, binary, workdir) as lab:
            print(f"stable v{lab.stable_version}; the slow canary sleeps {lab.slow_seconds * 1000:.0f} ms per request")
            for _ in range(args.repeats):
                for case in (*CASES, DOWN):
                    settings = RolloutSettings(**base, prometheus_url=lab.prometheus_url)
                    if case == DOWN:
                        settings = settings.model_copy(
                            update={"prometheus_url": closed_prometheus_url(), "deadline_seconds": 2 * args.interval}
                        )
                    run = run_lab_case(lab, "good" if case == DOWN else case, settings)
                    runs[case].append(run)
                    print(f"  {case}: {run.result.status} in {run.seconds:.1f} s ({run.result.reason})", flush=True)
    steps = "/".join(str(step) for step in base["steps"])
    print(f"\nRollout, steps {steps}%, analysis interval {args.interval:g} s, Prometheus scraping every 1 s")
    print(
        f"| case | outcome | seconds to full rollout / rollback (median of {args.repeats}) | "
        "analyses | decided by | client answers |"
    )
    print("|---|---|---|---|---|---|")
    for case, done in runs.items():
        seconds = statistics.median(run.seconds for run in done)
        last = done[-1]
        judged = sum(1 for step in last.result.steps if step.analysis is not None)
        answers = ", ".join(f"{status}: {count}" for status, count in sorted(last.statuses.items()))
        outcome = last.result.status.replace("_", " ")
        print(f"| {case} | {outcome} | {seconds:.1f} | {judged} | {decided_by(last)} | {answers} |")


if __name__ == "__main__":
    main()
