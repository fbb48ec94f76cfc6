"""Benchmark: the smallest shift our drift checks detect, beside Evidently's DataDriftPreset.

For each numeric column: the smallest multiplicative shift (every value x factor) that is
flagged in at least 19 of 20 seeds at 5,000 current rows against 20,000 reference rows,
by our checks (level warn or alert: PSI or the Wasserstein rule) and by Evidently (its
per-column drift flag, normalised Wasserstein >= 0.1 at these sizes), on the same frames;
then the false alarms of each in 20 unchanged seeds (factor 1). See
:mod:`churn.monitoring.sensitivity` for how the frames are made.

    .venv/bin/python scripts/bench_drift_sensitivity.py            # 20 seeds, 5,000 rows (~20 min)
    .venv/bin/python scripts/bench_drift_sensitivity.py --quick    # 5 seeds, needs 5 of 5
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

FACTORS = (1.02, 1.05, 1.075, 1.1, 1.15, 1.2, 1.25, 1.3, 1.4, 1.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="5 seeds instead of 20")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default 20, --quick 5)")
    parser.add_argument("--rows", type=int, default=5_000, help="current rows per seed")
    parser.add_argument("--reference-rows", type=int, default=20_000, help="reference rows per seed")
    args = parser.parse_args(argv)
    seeds = args.seeds or (5 if args.quick else 20)
    needed = seeds - 1 if seeds >= 20 else seeds

    warnings.filterwarnings("ignore")
    from churn.monitoring.sensitivity import detection_curve

    start = time.perf_counter()
    curve = detection_curve(
        FACTORS,
        seeds,
        current_rows=args.rows,
        reference_rows=args.reference_rows,
        progress=lambda done, total: print(
            f"  seed {done}/{total} ({time.perf_counter() - start:.0f}s)", file=sys.stderr
        ),
    )
    print(
        f"Smallest shift x factor flagged in >= {needed}/{seeds} seeds ({args.rows:,} current vs "
        f"{args.reference_rows:,} reference rows; factors {', '.join(map(str, FACTORS))}; '-' = none up to "
        f"{FACTORS[-1]}); false alarms in {seeds} unchanged seeds"
    )
    print("| column | ours | PSI alone | Evidently | false alarms: ours | PSI alone | Evidently |")
    print("|---|---|---|---|---|---|---|")
    worse = []
    for column in curve.columns:
        smallest = [curve.smallest_detected(c, column, needed) for c in ("churn", "psi", "evidently")]
        ours, theirs = smallest[0], smallest[2]
        if theirs is not None and (ours is None or ours > theirs):
            worse.append(column)
        alarms = [curve.false_alarms(c, column) for c in ("churn", "psi", "evidently")]
        print(f"| {column} | " + " | ".join(map(_factor, smallest)) + " | " + " | ".join(map(str, alarms)) + " |")
    runs = {c: curve.runs_with_false_alarm(c) for c in ("churn", "psi", "evidently")}
    print(
        f"Unchanged seeds with any false alarm: ours {runs['churn']}/{seeds}, PSI alone {runs['psi']}/{seeds}, "
        f"Evidently {runs['evidently']}/{seeds}. "
        f"Columns where Evidently detects a smaller shift than ours: {', '.join(worse) or 'none'}."
    )
    print()
    print(f"Detections per factor (ours / PSI alone / Evidently, seeds out of {seeds})")
    print("| column | " + " | ".join(f"x{f:g}" for f in curve.factors) + " |")
    print("|---|" + "---|" * len(curve.factors))
    for column in curve.columns:
        cells = ["/".join(str(curve.rate(c, f, column)) for c in ("churn", "psi", "evidently")) for f in curve.factors]
        print(f"| {column} | " + " | ".join(cells) + " |")
    print(f"\n{time.perf_counter() - start:.0f}s")
    return 0


def _factor(value: float | None) -> str:
    return "-" if value is None else f"x{value:g}"


if __name__ == "__main__":
    sys.exit(main())
