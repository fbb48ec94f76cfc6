"""Benchmark: what a shadow costs the caller, p50 and p99 through the transformer, shadow on vs off.

Two services run at once on the same champion (an XGBoost model; predictor + transformer,
gRPC hop, prediction log on in both): "off" without a shadow, "on" with a shadow predictor
serving the same model directory (a challenger as fast as the champion: what the transformer
pays per request is one more gRPC send and one more log record; a slow or dead shadow is
bounded apart, see tests/integration/test_shadow.py). The client alternates between them in
short blocks (off-on, then on-off, ...), as ``bench_serving.py --log-only`` does, so that a busy
shared machine slows both alike; each block gives one on/off ratio of neighbouring
measurements, and the table reports the median ratio with its quartiles and bootstrap interval.

    .venv/bin/python scripts/bench_shadow.py            # 30 blocks
    .venv/bin/python scripts/bench_shadow.py --quick    # fewer requests
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import Client, concurrent_run, latency_run, prepare, ratio_summary

MODES = ("off", "on")
KINDS = (("single", 1), ("concurrent8", 8))


def shadow_counts(url: str) -> dict[str, float]:
    """The transformer's ``churn_shadow_requests`` by outcome."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.findall(r'^churn_shadow_requests_total\{outcome="(\w+)"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return {outcome: float(value) for outcome, value in found}


def compare(
    model_dir: Path,
    tracking: str,
    records: list[dict[str, Any]],
    matrix: np.ndarray,
    workdir: Path,
    n: int,
    n_each: int,
    blocks: int,
) -> dict[str, Any]:
    """Alternating blocks of single-row requests (1 client, then 8) against the off and on services."""
    from churn.serving.local import LocalService, ServiceConfig

    configs = {
        mode: ServiceConfig.on_free_ports(
            str(model_dir),
            tracking_uri=tracking,
            log_dir=workdir / f"logs-shadow-{mode}",
            shadow_model_uri=str(model_dir) if mode == "on" else None,
            extra_env={"CHURN_SERVING__PREDICTION_LOG_URI": str(workdir / f"predictions-{mode}")},
        )
        for mode in MODES
    }
    runs: dict[str, dict[str, list[dict[str, float]]]] = {mode: {k: [] for k, _ in KINDS} for mode in MODES}
    with LocalService(configs["off"]).start(timeout=180), LocalService(configs["on"]).start(timeout=180):
        clients = {
            mode: Client(
                "http", f"{c.host}:{c.transformer_http_port}", matrix_input=None, records=records, matrix=matrix
            )
            for mode, c in configs.items()
        }
        calls = {mode: client.make(1) for mode, client in clients.items()}
        for block in range(blocks):
            print(f"shadow off/on, block {block + 1}/{blocks}...", file=sys.stderr)
            for mode in MODES if block % 2 == 0 else MODES[::-1]:
                runs[mode]["single"].append(latency_run(calls[mode], max(50, n // blocks), warmup=10))
                runs[mode]["concurrent8"].append(
                    concurrent_run(lambda c=clients[mode]: c.make(1), 8, max(10, n_each // blocks))
                )
        counts = shadow_counts(configs["on"].transformer_url)
    return {"runs": runs, "shadow_requests": counts}


def print_table(r: dict[str, Any]) -> None:
    """Per client count: p50 and p99 off and on (medians over blocks), and the blocks' on/off ratios."""
    runs = r["runs"]
    blocks = len(runs["off"]["single"])
    print(
        f"\nshadow: transformer path over REST (hop gRPC), single rows, both services served at once, {blocks} "
        "alternating off/on blocks; ratio = median of the blocks' on/off, IQR its quartiles, 95% CI a bootstrap "
        "interval of that median\n"
    )
    head = f"{'clients':>8}{'figure':>8}{'off ms':>9}{'on ms':>9}{'ratio':>8}{'IQR':>13}{'95% CI':>15}"
    print(head)
    print("-" * len(head))
    for kind, clients in KINDS:
        for figure in ("p50_ms", "p99_ms"):
            off = [m[figure] for m in runs["off"][kind]]
            on = [m[figure] for m in runs["on"][kind]]
            q = ratio_summary(on, off)
            print(
                f"{clients:>8}{figure[:3]:>8}{np.median(off):>9.2f}{np.median(on):>9.2f}{q['median']:>8.3f}"
                f"{q['q1']:>6.2f}-{q['q3']:<6.2f}{q['ci_low']:>8.3f}-{q['ci_high']:<6.3f}"
            )
    counts = ", ".join(f"{k} {v:,.0f}" for k, v in r["shadow_requests"].items())
    print(f"\nshadow calls by outcome: {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="Rows to train the served model on.")
    parser.add_argument("--family", default="xgboost", help="Model family to serve.")
    parser.add_argument("--quick", action="store_true", help="Fewer requests per measurement.")
    parser.add_argument("--blocks", type=int, default=30, help="Alternating off/on blocks.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this file.")
    args = parser.parse_args()
    n, n_each = (300, 60) if args.quick else (2_000, 250)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as tmp:
        workdir = Path(tmp)
        print(f"training {args.family} on {args.rows:,} rows...", file=sys.stderr)
        model, model_dir, records, tracking = prepare(args.rows, args.family, workdir)
        matrix = np.ascontiguousarray(model.features.transform(records))
        result = compare(model_dir, tracking, records, matrix, workdir, n, n_each, max(2, args.blocks))
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
