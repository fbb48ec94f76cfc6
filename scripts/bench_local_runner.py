"""Benchmark: KFP's local runner with warm task interpreters (churn.kfp.warm) against KFP's own cold start.

Runs the training pipeline (10 tasks, embedded sqlite MLflow) and the daily data pipeline (3
tasks) in alternating order, cold then warm then cold..., each run in a fresh child process
so that every warm series starts with a task server that still has to import the stack, as
a new ``churn`` command does. Within a child the same pipeline runs ``--repeats`` times: the
first run pays the server's start, the later ones show the steady state (a test worker, or
the retraining task's child, runs many pipelines). Prints one table: wall seconds of each run
and the median task time (from the runner's log).

    .venv/bin/python scripts/bench_local_runner.py              # 2 rounds, 3 runs per child
    .venv/bin/python scripts/bench_local_runner.py --quick      # 1 round, 2 runs per child
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_training import parse_log  # the runner's log, read as the training benchmark reads it

ROWS = 5_000
DATE = "2026-01-05"


def child(pipeline: str, warm: bool, repeats: int) -> list[dict[str, Any]]:
    """In a child process: run ``pipeline`` ``repeats`` times in a fresh data folder."""
    from churn.config import Settings
    from churn.kfp.local import local_parameters, run_local

    folder = Path(tempfile.mkdtemp(prefix="bench-runner-"))
    settings = Settings(data_dir=folder)
    settings.data.rows = ROWS
    settings.data.daily_rows = ROWS
    results = []
    for repeat in range(repeats):
        log = folder / f"{pipeline}-{repeat}.log"
        overrides: dict[str, Any] = {"date": DATE}
        if pipeline == "data":
            overrides["seed"] = repeat
        else:
            overrides["mlflow_tracking_uri"] = f"sqlite:///{folder}/mlflow.db"
        start = time.perf_counter()
        run_local(pipeline, settings, log=log, warm=warm, **local_parameters(settings, pipeline, **overrides))
        wall = time.perf_counter() - start
        tasks = [task.seconds for task in parse_log(log.read_text(encoding="utf-8", errors="replace"))]
        median = statistics.median(tasks)
        results.append({"repeat": repeat, "seconds": wall, "tasks": len(tasks), "task_median": median})
    return results


def main() -> None:
    """Alternate cold and warm children over both pipelines; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="One round, two runs per child.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        pipeline, mode = args.child.split(":")
        print(json.dumps(child(pipeline, mode == "warm", args.repeats)))
        return
    rounds, repeats = (1, 2) if args.quick else (args.rounds, args.repeats)
    rows: list[tuple[str, str, int, dict[str, Any]]] = []
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    for round_ in range(rounds):
        for pipeline in ("training", "data"):
            for mode in ("cold", "warm") if round_ % 2 == 0 else ("warm", "cold"):
                command = [sys.executable, __file__, "--child", f"{pipeline}:{mode}", "--repeats", str(repeats)]
                done = subprocess.run(command, check=True, capture_output=True, text=True)
                for result in json.loads(done.stdout.strip().splitlines()[-1]):
                    rows.append((pipeline, mode, round_, result))
                print(f"  {pipeline} {mode} round {round_ + 1}: done", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print("| pipeline | tasks | run in its process | cold s | warm s | warm / cold | median task cold / warm s |")
    print("|---|---|---|---|---|---|---|")
    for pipeline in ("training", "data"):
        for repeat in range(repeats):
            picked = {
                mode: [r for p, m, _, r in rows if p == pipeline and m == mode and r["repeat"] == repeat]
                for mode in ("cold", "warm")
            }
            cold = statistics.median(r["seconds"] for r in picked["cold"])
            warm = statistics.median(r["seconds"] for r in picked["warm"])
            tasks = picked["cold"][0]["tasks"]
            task_cold = statistics.median(r["task_median"] for r in picked["cold"])
            task_warm = statistics.median(r["task_median"] for r in picked["warm"])
            which = "first (server starting)" if repeat == 0 else f"#{repeat + 1}"
            print(
                f"| {pipeline} | {tasks} | {which} | {cold:.1f} | {warm:.1f} | {warm / cold:.2f} "
                f"| {task_cold:.1f} / {task_warm:.1f} |"
            )


if __name__ == "__main__":
    main()
