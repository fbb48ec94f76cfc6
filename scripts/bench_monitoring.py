"""Benchmark: our drift checks against Evidently's DataDriftPreset on the same frames.

Prints one table. Both contenders compare the same current rows with the same reference
rows over the same 20 raw features (14 numeric, 6 categorical), once on an undrifted day
and once on a drifted one. Ours = fitting the reference profile from the reference
frame plus all checks; Evidently = ``Report([DataDriftPreset()]).run(...)`` with an
explicit data definition. Each contender runs in its own subprocess on frames it
generates itself (same seeds, so the same rows): time excludes imports and data
generation (a warm-up run on 2,000 rows pays lazy imports first); peak memory is the
rise of the process's peak RSS during the run (Linux ``VmHWM``, reset just before it);
for our checks, whose chunks fit in memory the process already holds, a second run under
tracemalloc also gives the peak of memory allocated.

    .venv/bin/python scripts/bench_monitoring.py            # 100K reference x 1M current rows
    .venv/bin/python scripts/bench_monitoring.py --quick    # 20K x 100K rows
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

CONTENDERS = ("churn", "evidently")
Row = tuple[str, str, str, str, str, str]


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def measure(contender: str, scenario: str, reference_rows: int, current_rows: int) -> dict[str, Any]:
    """Run one contender on one scenario (in this process) and return its figures."""
    from churn.data import generate_customers
    from churn.monitoring.checks import check_drift
    from churn.monitoring.evidently_report import evidently_drift, evidently_drifted_columns
    from churn.monitoring.reference import fit_reference

    def run(reference: Any, current: Any) -> tuple[list[str], list[str], str]:
        if contender == "churn":
            report = check_drift(fit_reference(reference), current)
            return report.flagged, report.warned, report.levels["feature_drift"]
        drifted = evidently_drifted_columns(evidently_drift(reference, current))
        return drifted, [], "drift" if drifted else "ok"

    reference = generate_customers(reference_rows, "2026-01-05", seed=1).frame
    current = generate_customers(current_rows, "2026-01-06", seed=2, scenario=scenario).frame
    run(reference.head(2_000), current.head(2_000))  # warm-up: lazy imports and first-call costs
    gc.collect()
    rss_before = _status_kb("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    drifted, warned, verdict = run(reference, current)
    seconds = time.perf_counter() - start
    peak_mb = (_status_kb("VmHWM") - rss_before) / 1024
    traced_mb = None
    if contender == "churn":  # cheap enough to trace; tracing Evidently would slow it several-fold
        tracemalloc.start()
        run(reference, current)
        traced_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return {
        "seconds": seconds,
        "peak_mb": peak_mb,
        "traced_peak_mb": traced_mb,
        "rss_before_mb": rss_before / 1024,
        "drifted": drifted,
        "warned": warned,
        "verdict": verdict,
    }


def run_child(contender: str, scenario: str, reference_rows: int, current_rows: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", contender, scenario, str(reference_rows), str(current_rows)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"benchmark: {contender} on {scenario} failed:\n{result.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20K x 100K rows instead of 100K x 1M")
    parser.add_argument("--scenario", default="price_shock", help="the drifted scenario (default: price_shock)")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        contender, scenario, ref_rows, cur_rows = args.child
        print(json.dumps(measure(contender, scenario, int(ref_rows), int(cur_rows))))
        return

    from churn.data import get_scenario

    moved = set(get_scenario(args.scenario).moved_columns)
    reference_rows, current_rows = (20_000, 100_000) if args.quick else (100_000, 1_000_000)
    figures: dict[str, Any] = {"reference_rows": reference_rows, "current_rows": current_rows}
    rows: list[Row] = []
    for scenario in ("none", args.scenario):
        results = {c: run_child(c, scenario, reference_rows, current_rows) for c in CONTENDERS}
        figures[scenario] = results
        for contender, r in results.items():
            name = "churn.monitoring" if contender == "churn" else "Evidently DataDriftPreset"
            flagged = ", ".join(r["drifted"]) or "-"
            if r["warned"]:
                flagged += f" (warn: {', '.join(r['warned'])})"
            rows.append((scenario, name, f"{r['seconds']:.2f} s", f"{r['peak_mb']:,.1f} MB", r["verdict"], flagged))
        ours, theirs = results["churn"], results["evidently"]
        figures[scenario]["speedup"] = theirs["seconds"] / ours["seconds"]

    header: Row = ("scenario", "implementation", "time", "peak memory", "verdict", "drifted columns")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(len(header))]
    print(
        f"churn monitoring benchmark: {reference_rows:,} reference x {current_rows:,} current rows, "
        f"20 features ({os.cpu_count()} cores)"
    )
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print()
    for scenario in ("none", args.scenario):
        f = figures[scenario]
        print(
            f"{scenario}: ours {f['speedup']:.0f}x faster; peak RSS rise {f['churn']['peak_mb']:.1f} MB (ours; "
            f"{f['churn']['traced_peak_mb']:.1f} MB allocated at peak, tracemalloc) "
            f"vs {f['evidently']['peak_mb']:.0f} MB (Evidently)"
        )
    ours, theirs = figures[args.scenario]["churn"], figures[args.scenario]["evidently"]
    same_verdict = (ours["verdict"] == "alert") == (theirs["verdict"] == "drift") and (
        figures["none"]["churn"]["verdict"] == "ok"
    ) == (figures["none"]["evidently"]["verdict"] == "ok")
    print(f"same verdict on both days: {'yes' if same_verdict else 'no'}")
    print(
        f"{args.scenario} moved {', '.join(sorted(moved))}; "
        f"flagged by both: {', '.join(sorted(set(ours['drifted']) & set(theirs['drifted']))) or '-'}; "
        f"only ours: {', '.join(sorted(set(ours['drifted']) - set(theirs['drifted']))) or '-'}; "
        f"only Evidently: {', '.join(sorted(set(theirs['drifted']) - set(ours['drifted']))) or '-'}"
    )
    figures["same_verdict"] = same_verdict
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
