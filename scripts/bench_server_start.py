"""Benchmark: what starting the local model servers costs, fresh interpreters vs forks of a preloaded process.

One XGBoost champion in a local MLflow store (sqlite); the service is started in transformer
mode (predictor + transformer) ``--runs`` times each way, one after the other, in this process:

- ``cold``: each server a fresh ``python -m churn.serving.<role>`` (``ServiceConfig.preloaded``
  off), as its container starts it;
- ``forked``: each server forked from this process's fork server (``churn.forkserver``); its
  first start includes the fork server's own imports (a one-off per calling process), shown
  on its own row.

It prints the wall time until both servers answer ``ready`` and the CPU each server used until
then (user + system, from ``/proc``).

    .venv/bin/python scripts/bench_server_start.py             # 3 starts each way
    .venv/bin/python scripts/bench_server_start.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import prepare
from churn.serving.local import LocalService, ServiceConfig

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (its children excluded)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_once(config: ServiceConfig) -> tuple[float, float, int]:
    """Start the service, stop it; the wall seconds to ready, the mean CPU seconds per server, their parent."""
    began = time.perf_counter()
    with LocalService(config).start(timeout=300) as service:
        wall = time.perf_counter() - began
        pids = [process.pid for process in service.processes.values()]
        cpu = statistics.mean(cpu_seconds(pid) for pid in pids)
        parent = int(_stat(pids[0])[1])
    return wall, cpu, parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="Starts of the service each way.")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-start-"))
    _, _, _, tracking = prepare(6_000, "xgboost", workdir)
    rows: list[tuple[str, float, float]] = []
    fork_server = None
    for way in ("cold", "forked"):
        for run in range(args.runs):
            config = ServiceConfig.on_free_ports(
                "models:/churn-model@champion",
                tracking_uri=tracking,
                log_dir=workdir / "logs",
                preloaded=way == "forked",
            )
            wall, cpu, parent = start_once(config)
            fork_server = parent if way == "forked" else fork_server
            label = "forked, first start (+ fork server's imports)" if way == "forked" and run == 0 else way
            rows.append((label, wall, cpu))
    imports = cpu_seconds(fork_server) if fork_server is not None else float("nan")

    print(f"\nStarting predictor + transformer (XGBoost champion, sqlite registry), {args.runs} starts each way\n")
    print("| start | wall to ready (s) | CPU per server until ready (s) |")
    print("|---|---|---|")
    for label, wall, cpu in rows:
        print(f"| {label} | {wall:.1f} | {cpu:.1f} |")
    print(f"| the fork server's imports (once per calling process) | | {imports:.1f} |")
    cold = [cpu for label, _, cpu in rows if label == "cold"]
    forked = [cpu for label, _, cpu in rows if label == "forked"]
    if cold and forked:
        print(
            f"\nCPU per server, median: cold {statistics.median(cold):.1f} s, forked {statistics.median(forked):.1f} s"
        )


if __name__ == "__main__":
    main()
