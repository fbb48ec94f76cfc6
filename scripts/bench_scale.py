"""Benchmark: the training pipeline's stages on the pandas and the Dask engine, wall time and peak memory.

Each stage runs in its own child process, as a KFP task does (``python -c`` calling the
same :mod:`churn.stages` function the component calls), so each stage's driver peak is its
own. A sampler in this process reads the resident memory of the stage process and of
every process it starts (the Dask workers and their nanny) five times a second; the table
prints, per stage, the wall time, the driver's peak RSS and the largest worker's peak RSS.

Stages: generate (CSV for pandas, part-*.parquet for Dask), validate, split 70/15/15,
features (fit the feature pipeline and write the training split's feature table), train
each family, select (every model scored on the test split), reference (the monitoring
profile, as registration fits it) and monitor (drift checks of the test split against it,
with the winner's probabilities). The last table compares the test ROC-AUCs.

A stage that fails (e.g. a ``MemoryError`` under ``--memory-cap-gib``, which sets
``RLIMIT_AS`` on the pandas stages so a too-large run fails instead of swapping the
machine) is reported with its error, and the engine's later stages are skipped.

    .venv/bin/python scripts/bench_scale.py                              # the issue's runs: 1M both, 10M both
    .venv/bin/python scripts/bench_scale.py --runs pandas:1000000 dask:1000000
    .venv/bin/python scripts/bench_scale.py --quick                      # 50K rows, both engines
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
DATE = "2026-01-05"
FAMILIES = ("logistic_regression", "random_forest", "xgboost", "lightgbm")
LIMIT_GIB = 6.0
DEFAULT_RUNS = ("dask:1000000", "pandas:1000000", "dask:10000000", "pandas:10000000")


@dataclass
class Stage:
    """One stage of one run: what it took."""

    name: str
    seconds: float = 0.0
    driver_peak: int = 0
    worker_peak: int = 0
    workers: int = 0
    error: str = ""
    result: dict[str, Any] = field(default_factory=dict)


# One script per stage, run with `python -c`: exactly what a component's body does.
_STAGE = {
    "generate": """
from churn.stages import data
data.load_data(A['raw'], rows=A['rows'], date=A['date'], engine=A['engine'])
""",
    "validate": "from churn.stages import data; data.validate(A['raw'], A['dir'] + '/validation.json', min_rows=100)",
    "split": """
from churn.stages import data
R = data.split(A['raw'], {n: A[n] for n in ('train', 'validation', 'test')})
""",
    "features": """
from churn.stages import training
from churn.features.build import feature_table
from churn.features.pipeline import FeaturePipeline
from churn.data.files import write_raw
from pathlib import Path
if Path(A['train']).is_dir():
    from churn.engine.dask import stages as dask_steps
    from churn.engine.dask.features import features, fit_pipeline
    from churn.engine.dask.frames import read_raw
    with dask_steps.engine_client():
        frame = read_raw(A['train'])
        pipeline = fit_pipeline(frame)
        table = features(pipeline, frame)
        R = {'rows': dask_steps.write_parts(table, A['dir'] + '/features', what='features', raw=False)}
else:
    import pyarrow.parquet as pq
    train = training.read_split(A['train'])
    table = feature_table(FeaturePipeline().fit(train), train)
    pq.write_table(__import__('pyarrow').Table.from_pandas(table), A['dir'] + '/features.parquet')
    R = {'rows': len(table)}
""",
    "train": """
from churn.stages import training
from churn.config import get_settings
info = training.train(A['family'], A['train'], A['validation'], A['dir'] + '/model-' + A['family'],
                   params=get_settings().training.params(A['family']), n_jobs=2)
R = {'val_roc_auc': info['validation']['roc_auc'], 'train_rows': info.get('sampled_rows', info['train_rows'])}
R.update({k: info[k] for k in ('best_iteration', 'trained_rounds') if info.get(k) is not None})
""",
    "select": """
from churn.stages import training
sel = training.select({f: A['dir'] + '/model-' + f for f in A['families']}, A['test'], A['dir'] + '/winner')
R = {'winner': sel['winner'], 'test_roc_auc': {c['family']: c['test']['roc_auc'] for c in sel['candidates']}}
""",
    "reference": """
from churn.stages import registry, training
model = training.load_model(A['dir'] + '/winner')
_, labels = registry.example_and_test_labels(A['test'])
train = registry.reference_rows(A['train'])
profile, _ = registry.reference_for(model, train, roc_auc=0.8, test_labels=labels)
import joblib; joblib.dump(profile, A['dir'] + '/reference.joblib')
R = {'reference_rows': profile.rows}
""",
    "monitor": """
from pathlib import Path
import joblib
from churn.stages import training
model = training.load_model(A['dir'] + '/winner')
profile = joblib.load(A['dir'] + '/reference.joblib')
if Path(A['test']).is_dir():
    from churn.engine.dask import stages as dask_steps
    from churn.engine.dask.frames import read_raw
    from churn.engine.dask.monitoring import check_drift_dask
    with dask_steps.engine_client():
        report, _ = check_drift_dask(profile, read_raw(A['test']), model)
else:
    from churn.monitoring.checks import check_drift
    test = training.read_split(A['test'])
    report = check_drift(profile, test, model.predict_proba(test))
R = {'verdict': report.verdict, 'rows': report.current_rows}
""",
}
_PRELUDE = """
import json, resource, sys
A = json.loads(sys.argv[1])
if A.get('cap'):
    resource.setrlimit(resource.RLIMIT_AS, (A['cap'], A['cap']))
R = {}
"""
_EPILOGUE = "\nprint('BENCH-RESULT ' + json.dumps(R, default=str))\n"


def _sample(process: psutil.Process, stage: Stage, done: threading.Event) -> None:
    """Track the peak RSS of ``process`` and, separately, of the largest process it started."""
    seen: set[int] = set()
    while not done.is_set():
        try:
            stage.driver_peak = max(stage.driver_peak, process.memory_info().rss)
            for child in process.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                if rss > 150 << 20:  # a worker, not the tiny resource tracker or a shell
                    seen.add(child.pid)
                stage.worker_peak = max(stage.worker_peak, rss)
        except psutil.Error:
            pass
        stage.workers = len(seen)
        done.wait(0.2)


def run_stage(name: str, args: dict[str, Any], env: dict[str, str], log: Path, timeout: float) -> Stage:
    stage = Stage(name if "family" not in args else f"train {args['family']}")
    code = _PRELUDE + _STAGE[name] + _EPILOGUE
    start = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n=== {stage.name}\n")
        out.flush()
        process = subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(args)], stdout=subprocess.PIPE, stderr=out, env=env, text=True
        )
        done = threading.Event()
        sampler = threading.Thread(target=_sample, args=(psutil.Process(process.pid), stage, done), daemon=True)
        sampler.start()
        try:
            stdout, _ = process.communicate(timeout=timeout or None)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            stdout, _ = process.communicate()
            out.write(f"timed out after {timeout / 60:.0f} min\n")
        done.set()
        sampler.join()
    stage.seconds = time.perf_counter() - start
    for line in stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            stage.result = json.loads(line.removeprefix("BENCH-RESULT "))
    if process.returncode != 0:
        tail = [line for line in log.read_text().splitlines() if line.strip()][-1:]
        stage.error = (tail[0] if tail else f"exit {process.returncode}")[:110]
    return stage


def run(engine: str, rows: int, work: Path, cap_gib: float, families: tuple[str, ...], timeout: float) -> list[Stage]:
    folder = work / f"{engine}-{rows}"
    folder.mkdir(parents=True)
    suffix = "" if engine == "dask" else ".parquet"
    args: dict[str, Any] = {
        "dir": str(folder),
        "raw": str(folder / ("raw" if engine == "dask" else "raw.csv")),
        "rows": rows,
        "date": DATE,
        "engine": engine,
        "families": list(families),
        **{n: str(folder / f"{n}{suffix}") for n in ("train", "validation", "test")},
    }
    if engine == "pandas" and cap_gib:
        args["cap"] = int(cap_gib * (1 << 30))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CHURN_"))}
    env |= {"CHURN_DATA_DIR": str(folder / "data"), "PYTHONWARNINGS": "ignore"}
    log = folder / "stages.log"
    plan = [("generate", {}), ("validate", {}), ("split", {}), ("features", {})]
    plan += [("train", {"family": f}) for f in families]
    plan += [("select", {}), ("reference", {}), ("monitor", {})]
    stages: list[Stage] = []
    for name, extra in plan:
        stage = run_stage(name, {**args, **extra}, env, log, timeout)
        stages.append(stage)
        print(
            f"  {engine:6} {rows:>10,} {stage.name:<26} {stage.seconds:8.1f}s  driver {_gib(stage.driver_peak)} GiB"
            f"  worker {_gib(stage.worker_peak)} GiB  {stage.error}",
            flush=True,
        )
        if stage.error:
            break
    if any(s.error for s in stages):
        print(f"  kept {folder} (stages.log has the failed stage's traceback)")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return stages


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f}" if n else "-"


def print_tables(results: dict[str, list[Stage]]) -> None:
    print("\nPer stage: wall seconds, peak RSS (GiB) of the stage's own process and of its largest worker")
    print(f"{'run':<16} {'stage':<26} {'seconds':>9} {'driver':>7} {'worker':>7} {'workers':>7}  note")
    for run_name, stages in results.items():
        for s in stages:
            note = s.error or ", ".join(f"{k}={v}" for k, v in s.result.items() if not isinstance(v, dict))
            print(
                f"{run_name:<16} {s.name:<26} {s.seconds:9.1f} {_gib(s.driver_peak):>7} {_gib(s.worker_peak):>7} "
                f"{s.workers or '-':>7}  {note}"
            )
        total = sum(s.seconds for s in stages)
        peak = max([max(s.driver_peak, s.worker_peak) for s in stages] or [0])
        finished = not any(s.error for s in stages)
        print(
            f"{run_name:<16} {'TOTAL':<26} {total:9.1f} {'':>7} {'':>7} {'':>7}  "
            f"{'finished' if finished else 'FAILED'}; largest process {_gib(peak)} GiB "
            f"({'within' if peak <= LIMIT_GIB * (1 << 30) else 'ABOVE'} the {LIMIT_GIB:g} GiB aim)"
        )
    print("\nTest ROC-AUC per family (select stage)")
    aucs = {
        name: next((s.result.get("test_roc_auc", {}) for s in stages if s.name == "select"), {})
        for name, stages in results.items()
    }
    names = list(results)
    print(f"{'family':<22}" + "".join(f"{n:>18}" for n in names))
    for family in FAMILIES:
        cells = "".join(f"{aucs[n][family]:>18.4f}" if family in aucs[n] else f"{'-':>18}" for n in names)
        print(f"{family:<22}{cells}")
    for rows in sorted({n.split(":")[1] for n in names}):
        pandas_run, dask_run = f"pandas:{rows}", f"dask:{rows}"
        if pandas_run in results and dask_run in results:
            p_total = sum(s.seconds for s in results[pandas_run])
            d_total = sum(s.seconds for s in results[dask_run])
            finished = all(not s.error for s in results[pandas_run] + results[dask_run])
            if finished:
                print(f"\n{rows} rows: Dask / pandas wall time = {d_total / p_total:.2f} (aim <= 1.5)")
            for family in ("xgboost", "lightgbm"):
                if family in aucs[pandas_run] and family in aucs[dask_run]:
                    diff = aucs[dask_run][family] - aucs[pandas_run][family]
                    print(f"{rows} rows: {family} test ROC-AUC Dask - pandas = {diff:+.4f} (aim within 0.005)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS), help="ENGINE:ROWS, in order")
    parser.add_argument("--quick", action="store_true", help="pandas:50000 and dask:50000")
    parser.add_argument(
        "--memory-cap-gib", type=float, default=14.0, help="RLIMIT_AS of pandas stages (0 = none): fail, not swap"
    )
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument(
        "--stage-timeout-min", type=float, default=45.0, help="Stop a stage after this long and report it (0 = never)"
    )
    parser.add_argument("--work", type=Path, default=None, help="Scratch folder [default: a temporary one]")
    options = parser.parse_args()
    runs = ["pandas:50000", "dask:50000"] if options.quick else options.runs
    work = options.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"bench_scale: {os.cpu_count()} cores, {psutil.virtual_memory().total / (1 << 30):.0f} GiB, "
        f"load average {os.getloadavg()[0]:.1f}; Dask: CHURN_DASK__* settings (default: one worker per core)"
    )
    results: dict[str, list[Stage]] = {}
    for item in runs:
        engine, _, rows = item.partition(":")
        if engine not in ("pandas", "dask") or not rows.isdigit():
            parser.error(f"--runs takes ENGINE:ROWS with ENGINE pandas or dask, not {item!r}")
        timeout = options.stage_timeout_min * 60
        results[item] = run(engine, int(rows), work, options.memory_cap_gib, tuple(options.families), timeout)
        if item != runs[-1]:
            print_tables(results)  # so far: a long run stopped later still leaves its tables
    print_tables(results)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if options.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
