"""Benchmark: batch scoring with and without reasons, and the online cost of asking for reasons.

Prints two tables.

1. Batch: for each model family (trained on 100K rows with the project's hyperparameters),
   scoring N raw rows (default 1M) with the batch scorer (``Scorer.score_table``, in parts
   of 250K rows as ``churn score`` does; features, probabilities, labels, deciles, plus the
   top-3 reasons when on): rows/s and the peak RSS of the process. Each cell runs in its own
   subprocess on rows it generates itself; the time excludes generation and imports, the
   peak RSS is the process's ``VmHWM`` after the run (so it includes the raw frame).
2. Online: one raw record through the transformer's preprocess, the predictor and the
   transformer's postprocess, in process (no HTTP, so the difference is not lost in network
   noise): p50 and p99 of a plain request and of one asking for ``churn_reasons``,
   alternated in the same loop, and the p50 overhead.
3. Agreement: for the boosters, how often path attribution names the same top-3 reasons
   as TreeSHAP on ``--agree-rows`` rows (what the faster setting gives up), beside the
   size of each model (trees kept, leaves, deepest tree).

    .venv/bin/python scripts/bench_scoring.py                 # 1M rows
    .venv/bin/python scripts/bench_scoring.py --rows 200000   # quicker

The boosters' TreeSHAP cells score ``--shap-rows`` (100K) rows: at about 1K rows/s on two
busy cores, 1M rows would take a quarter of an hour each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FAMILIES = ("logistic_regression", "random_forest", "xgboost", "lightgbm")
TRAIN_ROWS = 100_000
BOOSTERS = ("xgboost", "lightgbm")


def _peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("VmHWM not in /proc/self/status")


def train(folder: Path) -> None:
    """Train the four families on the same 100K rows and save them (one joblib per family)."""
    import joblib

    from churn.config import get_settings
    from churn.data import generate_customers
    from churn.scoring.batch import fit_risk_deciles
    from churn.training import split_frame, train_family

    settings = get_settings().training
    parts = split_frame(generate_customers(TRAIN_ROWS, "2026-01-05", seed=1).frame, seed=1)
    for family in FAMILIES:
        model = train_family(family, parts["train"], parts["validation"], settings.params(family), n_jobs=2)
        deciles = fit_risk_deciles(model.predict_proba(parts["train"]))
        joblib.dump((model, deciles), folder / f"{family}.joblib")


def batch(folder: Path, family: str, rows: int, reasons: str) -> dict[str, Any]:
    """Score ``rows`` generated rows with one family, in this process."""
    import joblib
    import numpy as np

    from churn.data import generate_customers
    from churn.scoring.batch import PART_ROWS, Scorer
    from churn.scoring.reasons import Explainer
    from churn.training.models import set_threads

    model, deciles = joblib.load(folder / f"{family}.joblib")
    set_threads(family, model.estimator, 2)
    frame = generate_customers(rows, "2026-02-01", seed=2).frame
    explainer = None if reasons == "none" else Explainer(model, reasons)
    scorer = Scorer(model, "churn-model", "1", np.asarray(deciles), explainer)
    scorer.score_table(frame.head(1_000))  # warm-up: lazy imports, thread pools
    start = time.perf_counter()
    scored = 0
    for begin in range(0, rows, PART_ROWS):
        scored += scorer.score_table(frame.iloc[begin : begin + PART_ROWS]).num_rows
    seconds = time.perf_counter() - start
    return {"rows": scored, "seconds": seconds, "peak_mb": _peak_kb() / 1024}


def model_size(model: Any) -> str:
    """Trees kept after early stopping, their leaves and the deepest tree, of a booster."""
    if model.family == "xgboost":
        best = model.estimator.best_iteration
        trees = model.estimator.get_booster()[: best + 1].trees_to_dataframe()
        leaves = int((trees["Feature"] == "Leaf").sum())
        depth = model.estimator.get_params()["max_depth"]
        return f"{trees['Tree'].nunique()} trees, {leaves:,} leaves, depth <= {depth}"
    dumped = model.estimator.booster_.dump_model(num_iteration=model.estimator.best_iteration_ or None)["tree_info"]

    def depth(node: dict[str, Any]) -> int:
        if "split_feature" not in node:
            return 0
        return 1 + max(depth(node["left_child"]), depth(node["right_child"]))

    deepest = max(depth(tree["tree_structure"]) for tree in dumped)
    leaves = sum(tree["num_leaves"] for tree in dumped)
    return f"{len(dumped)} trees, {leaves:,} leaves, depth <= {deepest}"


def agree(folder: Path, family: str, rows: int) -> dict[str, Any]:
    """Top-3 agreement of path attribution with TreeSHAP on ``rows`` generated rows."""
    import joblib

    from churn.data import generate_customers
    from churn.scoring.reasons import PATH, SHAP, Explainer, agreement
    from churn.training.models import set_threads

    model, _ = joblib.load(folder / f"{family}.joblib")
    set_threads(family, model.estimator, 2)
    matrix = model.features.transform(generate_customers(rows, "2026-02-01", seed=4).frame)
    found = agreement(Explainer(model, SHAP).top(matrix), Explainer(model, PATH).top(matrix))
    return {"size": model_size(model), **found}


def online(folder: Path, family: str, repeats: int, method: str) -> dict[str, Any]:
    """p50/p99 of one record through transformer + predictor (in process), plain and with reasons."""
    import asyncio
    import copy

    import joblib
    import numpy as np
    from kserve import InferInput, InferRequest
    from kserve.protocol.infer_type import RequestedOutput

    from churn.data import generate_customers
    from churn.serving.loading import ServedModel
    from churn.serving.predictor import ChurnPredictor
    from churn.serving.transformer import ChurnTransformer

    model, _ = joblib.load(folder / f"{family}.joblib")
    # Each role its own copy of the model, as in its own process (threads set by one do not help the other).
    own = ServedModel(copy.deepcopy(model), "1", "bench")
    transformer = ChurnTransformer("churn-model", own, max_batch_size=10, reasons_method=method)
    predictor = ChurnPredictor("churn-model", ServedModel(model, "1", "bench"), max_batch_size=10, threads=1)
    transformer.load()
    predictor.load()
    frame = generate_customers(200, "2026-02-01", seed=3).frame.drop(columns=["churned"])
    records = json.loads(frame.to_json(orient="records", date_format="iso"))
    for record in records:
        for key in ("signup_date", "snapshot_date"):
            record[key] = record[key][:10]
    wanted = [RequestedOutput(name) for name in ("churn_probability", "churn_label", "churn_reasons")]

    def request(record: dict[str, Any], reasons: bool) -> InferRequest:
        item = InferInput("records", [1], "BYTES", data=[json.dumps(record)])
        return InferRequest(
            model_name="churn-model", infer_inputs=[item], request_id="b", request_outputs=wanted if reasons else None
        )

    async def call(req: InferRequest) -> Any:
        return transformer.postprocess(predictor.predict(transformer.preprocess(req)))

    async def loop() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {"plain": [], "reasons": []}
        for i in range(repeats):
            for kind in ("plain", "reasons") if i % 2 else ("reasons", "plain"):
                req = request(records[i % len(records)], kind == "reasons")
                start = time.perf_counter()
                answer = await asyncio.create_task(call(req))  # a task per request, as the server runs them
                times[kind].append(time.perf_counter() - start)
                assert (answer.get_output_by_name("churn_reasons") is not None) == (kind == "reasons")
        return times

    asyncio.run(loop())  # warm-up
    times = asyncio.run(loop())
    return {kind: [float(np.percentile(v, 50) * 1e3), float(np.percentile(v, 99) * 1e3)] for kind, v in times.items()}


def _child(*args: str) -> dict[str, Any]:
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="Rows scored per batch cell.")
    parser.add_argument(
        "--shap-rows", type=int, default=100_000, help="Rows of the boosters' TreeSHAP cells (1M would take an hour)."
    )
    parser.add_argument("--repeats", type=int, default=2_000, help="Single-row requests of each kind (online).")
    parser.add_argument("--agree-rows", type=int, default=20_000, help="Rows of the path-vs-TreeSHAP agreement.")
    parser.add_argument("--families", default=",".join(FAMILIES), help="Comma-separated families.")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, folder, family, *rest = args.child
        if kind == "train":
            train(Path(folder))
            print("{}")
        elif kind == "batch":
            print(json.dumps(batch(Path(folder), family, int(rest[0]), rest[1])))
        elif kind == "agree":
            print(json.dumps(agree(Path(folder), family, int(rest[0]))))
        else:
            print(json.dumps(online(Path(folder), family, int(rest[0]), rest[1])))
        return
    families = [f for f in args.families.split(",") if f]
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        _child("train", str(folder), "all")
        print(f"trained {len(FAMILIES)} families on {TRAIN_ROWS:,} rows in {time.perf_counter() - start:.0f}s\n")
        print(f"Batch scoring, {args.rows:,} rows, 2 threads: rows/s (peak RSS MB of the process)")
        print("reasons: shap = TreeSHAP for the boosters (the default); path = path attribution (boosters only)")
        print(f"| {'family':<20} | {'no reasons':>18} | {'reasons (shap)':>18} | {'reasons (path)':>18} |")
        print(f"|{'-' * 22}|{'-' * 20}|{'-' * 20}|{'-' * 20}|")
        for family in families:
            cells = []
            for mode in ("none", "shap", "path"):
                if mode == "path" and family not in BOOSTERS:
                    cells.append(f"{'(as shap)':>18}")
                    continue
                slow = mode == "shap" and family in BOOSTERS and args.shap_rows < args.rows
                rows = args.shap_rows if slow else args.rows
                found = _child("batch", str(folder), family, str(rows), mode)
                mark = "*" if slow else " "
                cells.append(f"{found['rows'] / found['seconds']:>9,.0f}{mark} ({found['peak_mb']:>5,.0f})")
            print(f"| {family:<20} | " + " | ".join(cells) + " |", flush=True)
        if args.shap_rows < args.rows:
            print(f"* on {args.shap_rows:,} rows (--shap-rows): TreeSHAP's rate does not depend on the row count")
        print(f"\nOnline, one record, transformer + predictor in process, {args.repeats:,} requests of each kind (ms)")
        header = ("method", "plain p50", "plain p99", "reasons p50", "reasons p99", "p50 overhead")
        print(f"| {'family':<20} | " + " | ".join(header) + " |")
        print(f"|{'-' * 22}|" + "|".join("-" * (len(h) + 2) for h in header) + "|")
        for family in families:
            for method in ("shap", "path") if family in BOOSTERS else ("shap",):
                found = _child("online", str(folder), family, str(args.repeats), method)
                (p50, p99), (r50, r99) = found["plain"], found["reasons"]
                print(
                    f"| {family:<20} | {method:<6} | {p50:>9.3f} | {p99:>9.3f} | {r50:>11.3f} | {r99:>11.3f} | "
                    f"{r50 - p50:>+12.3f} |",
                    flush=True,
                )
        boosters = [f for f in families if f in BOOSTERS]
        if boosters:
            print(f"\nPath attribution vs TreeSHAP: share of {args.agree_rows:,} rows with the same top-3 reasons")
            header = ("same top 1", "same top-3 set", "same top 3 in order, sign", "top-3 overlap", "model")
            print(f"| {'family':<20} | " + " | ".join(header) + " |")
            print(f"|{'-' * 22}|" + "|".join("-" * (len(h) + 2) for h in header[:-1]) + "|-------|")
            for family in boosters:
                found = _child("agree", str(folder), family, str(args.agree_rows))
                print(
                    f"| {family:<20} | {found['top1']:>10.1%} | {found['top_set']:>14.1%} | "
                    f"{found['ordered']:>25.1%} | {found['overlap']:>13.1%} | {found['size']} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
