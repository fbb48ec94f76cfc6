"""Benchmark: data generation, validation and the feature pipeline, against plain scikit-learn.

Prints one table. The baseline is what a user would otherwise write: the same derived
features followed by a scikit-learn ColumnTransformer (SimpleImputer + StandardScaler,
OneHotEncoder), fed a pandas DataFrame. Both run in this process, on the same rows.

    .venv/bin/python scripts/bench_features.py            # 100K and 1M rows
    .venv/bin/python scripts/bench_features.py --quick    # 20K and 100K rows
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import FunctionTransformer, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from churn.data import generate_customers, iter_customer_blocks
from churn.data.files import write_raw
from churn.data.schema import CATEGORY_COLUMNS
from churn.features import FeaturePipeline
from churn.validation import validate_file

Row = tuple[str, str, str, str]


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def per_record(fn: Callable[[Any], Any], records: list[Any]) -> tuple[float, float]:
    for record in records[:50]:
        fn(record)  # warm-up
    times = []
    for record in records:
        start = time.perf_counter()
        fn(record)
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def sklearn_baseline(ours: FeaturePipeline, train: pd.DataFrame) -> Any:
    derived = ours.derive_frame(train.head(1))
    continuous = ours.continuous_names_
    binary = [c for c in derived.columns if c not in continuous and c not in CATEGORY_COLUMNS]
    preprocess = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), continuous),
            ("flags", "passthrough", binary),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(CATEGORY_COLUMNS)),
        ]
    )
    return make_pipeline(FunctionTransformer(ours.derive_frame), preprocess).fit(train)


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f} rows/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20K and 100K rows instead of 100K and 1M")
    parser.add_argument("--records", type=int, default=2000, help="single records timed for p50/p99")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    small, large = (20_000, 100_000) if args.quick else (100_000, 1_000_000)
    rows: list[Row] = []
    figures: dict[str, float] = {}

    frames: dict[int, pd.DataFrame] = {}
    for n in (small, large):
        seconds, generated = timed(lambda n=n: generate_customers(n, "2026-01-05", seed=1))
        rows.append((f"generate {n:,} rows", "churn.data", f"{seconds:.2f} s", rate(n, seconds)))
        figures[f"generate_{n}_s"] = seconds
        frames[n] = generated.frame

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "customers.csv"
        seconds, _ = timed(lambda: write_raw((b.frame for b in iter_customer_blocks(small, "2026-01-05")), path))
        rows.append((f"write CSV {small:,} rows", "pyarrow, streamed", f"{seconds:.2f} s", rate(small, seconds)))
        seconds, _ = timed(lambda: validate_file(path))
        rows.append((f"validate CSV {small:,} rows", "pandera schema", f"{seconds:.2f} s", rate(small, seconds)))
        figures["validate_small_s"] = seconds

    pipelines: dict[int, FeaturePipeline] = {}
    for n, frame in frames.items():
        ours = FeaturePipeline()
        seconds, _ = timed(lambda frame=frame, ours=ours: ours.fit(frame))
        rows.append((f"fit on {n:,} rows", "churn FeaturePipeline", f"{seconds:.2f} s", rate(n, seconds)))
        figures[f"fit_{n}_s"] = seconds
        b_seconds, baseline = timed(lambda frame=frame, ours=ours: sklearn_baseline(ours, frame))
        rows.append((f"fit on {n:,} rows", "sklearn ColumnTransformer", f"{b_seconds:.2f} s", rate(n, b_seconds)))
        figures[f"sklearn_fit_{n}_s"] = b_seconds
        seconds, matrix = timed(lambda frame=frame, ours=ours: ours.transform(frame), repeat=2)
        rows.append((f"transform {n:,} rows", "churn FeaturePipeline", f"{seconds:.2f} s", rate(n, seconds)))
        figures[f"transform_{n}_s"] = seconds
        b_seconds, expected = timed(lambda frame=frame, baseline=baseline: baseline.transform(frame))
        rows.append((f"transform {n:,} rows", "sklearn ColumnTransformer", f"{b_seconds:.2f} s", rate(n, b_seconds)))
        figures[f"sklearn_transform_{n}_s"] = b_seconds
        if not np.allclose(matrix, expected, atol=1e-9):
            raise SystemExit("benchmark: the two pipelines disagree")
        pipelines[n] = ours

    ours, baseline = pipelines[small], sklearn_baseline(pipelines[small], frames[small])
    records = json.loads(frames[small].head(args.records).to_json(orient="records", date_format="iso"))
    p50, p99 = per_record(ours.transform, records)
    rows.append(("one record (JSON dict)", "churn FeaturePipeline", f"p50 {p50:.3f} ms", f"p99 {p99:.3f} ms"))
    figures.update(record_p50_ms=p50, record_p99_ms=p99)
    b50, b99 = per_record(lambda r: baseline.transform(pd.DataFrame([r])), records[:500])
    rows.append(("one record (JSON dict)", "sklearn ColumnTransformer", f"p50 {b50:.3f} ms", f"p99 {b99:.3f} ms"))
    figures.update(sklearn_record_p50_ms=b50, sklearn_record_p99_ms=b99)

    widths = [max(len(r[i]) for r in [*rows, ("case", "implementation", "time", "throughput")]) for i in range(4)]
    header = ("case", "implementation", "time", "throughput")
    print(f"churn feature benchmark ({os.cpu_count()} cores, single-threaded NumPy)")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"\none record: {b50 / p50:.0f}x faster than the sklearn baseline at p50; matrices equal on every batch")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
