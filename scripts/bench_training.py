"""Benchmark: the local training pipeline (KFP local runner) against the same fits done in-process.

For each row count, in a fresh data folder: generate the raw CSV once (seeded, with the
generator's true churn probabilities), run the training pipeline with the KFP local runner
and an embedded sqlite MLflow, then redo the model work in this process on the same rows
(validate, split, fit the feature pipeline and each family, predict the test split).

Prints one table per row count: each task's time (from the runner's log), the pipeline's
wall time, the pure compute time (feature transforms + model fits + test predictions,
in-process), their ratio, where the difference goes, peak memory, the winner's test ROC-AUC
and the best ROC-AUC achievable on the same test rows (from the true probabilities).

Each row count runs in its own child process, so peak-memory figures do not carry over.
The machine may be shared: the load average before and after each run is printed, and CPU
times (less sensitive to other processes than wall times) are shown beside wall times.

    .venv/bin/python scripts/bench_training.py                  # 100K and 1M rows
    .venv/bin/python scripts/bench_training.py --quick          # 20K rows
    .venv/bin/python scripts/bench_training.py --rows 100000 --json bench.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DATE = "2026-01-05"
TARGET_RATIO = 1.5
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CLOCK = r"(\d\d):(\d\d):(\d\d)[.,](\d{3})"
_TASK_START = re.compile(rf"^{_CLOCK} - \w+ - Executing task '([\w-]+)'")
_TASK_END = re.compile(rf"^{_CLOCK} - \w+ - Task '([\w-]+)' finished with status (\w+)")
_EXEC_START = re.compile(rf"\[KFP Executor \d{{4}}-\d\d-\d\d {_CLOCK} INFO\]: Got executor_input")
_EXEC_END = re.compile(rf"\[KFP Executor \d{{4}}-\d\d-\d\d {_CLOCK} INFO\]: Wrote executor output")
_FAMILY = re.compile(r'"family": "(\w+)"')
_OUTPUT_FILE = re.compile(r'"outputFile":\s*"([^"]*)/([\w-]+)/executor_output\.json"')
_DATA_STEPS = ("load-data", "validate-data", "split-data")


# --------------------------------------------------------------------------- log parsing


@dataclass
class TaskTiming:
    """One task of the local run, timed from the runner's log (seconds since midnight)."""

    name: str
    start: float
    end: float | None = None
    status: str = ""
    family: str = ""
    exec_start: float | None = None
    exec_end: float | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.family})" if self.family else self.name

    @property
    def seconds(self) -> float:
        return (self.end or self.start) - self.start

    @property
    def startup(self) -> float:
        """New interpreter, ``import kfp`` and loading the component, until the executor has its input."""
        return self.exec_start - self.start if self.exec_start is not None else 0.0

    @property
    def exit(self) -> float:
        """From the executor output written to the runner seeing the task finished."""
        return (self.end or self.start) - self.exec_end if self.exec_end is not None else 0.0

    @property
    def body(self) -> float:
        """The component function: its imports, I/O and work."""
        return self.seconds - self.startup - self.exit


def _clock(match: re.Match[str], first: int = 1) -> float:
    h, m, s, ms = (int(match.group(i)) for i in range(first, first + 4))
    return h * 3600 + m * 60 + s + ms / 1000


def parse_log(text: str) -> list[TaskTiming]:
    """Tasks of a local run in the order they ran, from the log written by ``run_local``.

    The runner runs tasks one after another and stamps its lines ``HH:MM:SS.mmm``; the
    executor inside each task stamps ``Got executor_input`` / ``Wrote executor output``.
    """
    tasks: list[TaskTiming] = []
    current: TaskTiming | None = None
    day = 0.0
    last = -1.0

    def stamp(value: float) -> float:
        nonlocal day, last
        if value + day < last - 43_200:  # the clock went past midnight
            day += 86_400
        last = value + day
        return last

    for raw in text.splitlines():
        line = _ANSI.sub("", raw)
        if match := _TASK_START.search(line):
            current = TaskTiming(match.group(5), stamp(_clock(match)))
            tasks.append(current)
        elif match := _TASK_END.search(line):
            for task in reversed(tasks):
                if task.name == match.group(5) and task.end is None:
                    task.end, task.status = stamp(_clock(match)), match.group(6)
                    break
            current = None
        elif current is not None:
            if match := _EXEC_START.search(line):
                current.exec_start = stamp(_clock(match))
            elif match := _EXEC_END.search(line):
                current.exec_end = stamp(_clock(match))
            elif current.name.startswith("train-model") and not current.family and (match := _FAMILY.search(line)):
                current.family = match.group(1)
    return tasks


# --------------------------------------------------------------------------- memory sampling


class TaskMemory:
    """Peak RSS of each task subprocess of one run, sampled from /proc (Linux; best effort).

    A task is recognised by its executor command line, whose output file lies under the
    run's pipeline root; ``VmHWM`` is the process's own high-water mark, so a sample taken
    shortly before the task exits already holds (nearly) its peak.
    """

    def __init__(self, root: Path, interval: float = 0.2) -> None:
        self.root = str(root.resolve())
        self.interval = interval
        self.peak_kib: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TaskMemory:
        if Path("/proc/self/status").exists():
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        known: dict[int, str] = {}
        while not self._stop.wait(self.interval):
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                pid = int(entry.name)
                try:
                    task = known.get(pid) or self._task_of(entry)
                    if task is None:
                        continue
                    known[pid] = task
                    for line in (entry / "status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            kib = int(line.split()[1])
                            self.peak_kib[task] = max(self.peak_kib.get(task, 0), kib)
                            break
                except (OSError, ValueError):
                    known.pop(pid, None)

    def _task_of(self, entry: Path) -> str | None:
        cmdline = (entry / "cmdline").read_bytes()
        if b"executor_main" not in cmdline or b"python" not in cmdline.split(b"\0", 1)[0]:
            return None
        match = _OUTPUT_FILE.search(cmdline.replace(b"\0", b" ").decode("utf-8", "replace"))
        if match is None or not match.group(1).startswith(self.root):
            return None
        return match.group(2)


# --------------------------------------------------------------------------- one row count


def _mib(kib: float) -> float:
    return kib / 1024


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_busy() -> float:
    """CPU seconds every process of this machine has used since boot (from /proc/stat; 0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _in_task_compute(run_dir: Path, tasks: list[TaskTiming]) -> dict[str, float]:
    """Compute seconds measured inside each task: features + fit (train), test predictions (select)."""
    found: dict[str, float] = {}
    for task in tasks:
        if task.name.startswith("train-model"):
            info_file = run_dir / task.name / "model" / "info.json"
            if info_file.is_file():
                info = json.loads(info_file.read_text())
                found[task.name] = float(info["features_seconds"]) + float(info["fit_seconds"])
        elif task.name == "select-model":
            selection = run_dir / task.name / "winner" / "selection.json"
            if selection.is_file():
                rows = json.loads(selection.read_text())["candidates"]
                found[task.name] = sum(float(r["predict_seconds"]) for r in rows)
    return found


def bench_one(rows: int, workdir: Path, progress: Any) -> dict[str, Any]:
    """Generate, run the pipeline, redo the compute in-process; return every figure."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from churn.config import Settings
    from churn.data.schema import ID, LABEL
    from churn.jobs.files import generate_file
    from churn.kfp.local import local_parameters, run_local
    from churn.training import FAMILIES, split_frame, train_family
    from churn.validation import validate_file

    def say(message: str) -> None:
        print(f"[{rows:,} rows {time.strftime('%H:%M:%S')}] {message}", file=progress, flush=True)

    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # whatever a task writes relative to its working directory stays in the work folder
    data_dir = (workdir / "data").resolve()
    settings = Settings(data_dir=data_dir)
    os.environ["CHURN_DATA_DIR"] = str(data_dir)
    result: dict[str, Any] = {
        "rows": rows,
        "workdir": str(workdir),
        "load_before": os.getloadavg()[0],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }

    say("generating the raw CSV")
    start = time.perf_counter()
    generated = generate_file(settings, rows=rows, date=DATE, seed=settings.data.seed, with_truth=True)
    result["generate_seconds"] = time.perf_counter() - start
    result["csv_mib"] = generated.path.stat().st_size / 2**20
    assert generated.truth is not None

    # 1. The pipeline, as `churn run --train` runs it.
    log = workdir / "train.log"
    say(f"running the training pipeline (log: {log})")
    self_kib_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu_children, cpu_self, busy = _children_cpu(), _self_cpu(), _machine_busy()
    parameters = local_parameters(settings, source_uri=str(generated.path.resolve()), date=DATE)
    with TaskMemory(data_dir / "kfp") as memory:
        start = time.perf_counter()
        run = run_local(
            "training",
            settings,
            log=log,
            on_task=lambda task, status: say(f"task {task}: {status.lower()}"),
            **parameters,
        )
        wall = time.perf_counter() - start
    result["pipeline_cpu_seconds"] = (_children_cpu() - cpu_children) + (_self_cpu() - cpu_self)
    result["pipeline_others_cores"] = (_machine_busy() - busy - result["pipeline_cpu_seconds"]) / wall
    result["pipeline_seconds"] = wall
    result["pipeline_output"] = run.output
    result["children_peak_mib"] = _mib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    result["self_peak_pipeline_mib"] = _mib(max(self_kib_before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
    tasks = parse_log(log.read_text(encoding="utf-8", errors="replace"))
    run_dirs = sorted((data_dir / "kfp").glob("churn-training-*"))
    in_task = _in_task_compute(run_dirs[-1], tasks) if run_dirs else {}
    result["tasks"] = [
        {
            **asdict(t),
            "label": t.label,
            "seconds": t.seconds,
            "startup": t.startup,
            "body": t.body,
            "exit": t.exit,
            "in_task_compute": in_task.get(t.name),
            "peak_mib": _mib(memory.peak_kib[t.name]) if t.name in memory.peak_kib else None,
        }
        for t in tasks
    ]

    # 2. Pure compute, in this process, on the same rows.
    say("redoing the model work in-process")
    start = time.perf_counter()
    frame, _ = validate_file(generated.path, min_rows=settings.validation.min_rows)
    result["inprocess_validate_seconds"] = time.perf_counter() - start
    training = settings.training
    parts = split_frame(
        frame, seed=training.seed, validation_size=training.validation_size, test_size=training.test_size
    )
    del frame
    test = parts["test"]
    y_test = test[LABEL].to_numpy(dtype=np.int64)
    families: dict[str, dict[str, Any]] = {}
    busy, cpu_self, start_compute = _machine_busy(), _self_cpu(), time.perf_counter()
    for family in FAMILIES:
        cpu = time.process_time()
        model = train_family(
            family,
            parts["train"],
            parts["validation"],
            training.params(family),
            n_jobs=training.n_jobs,
            seed=training.seed,
        )
        start = time.perf_counter()
        p_test = model.predict_proba(test)
        predict = time.perf_counter() - start
        families[family] = {
            "features_seconds": model.info["features_seconds"],
            "fit_seconds": model.info["fit_seconds"],
            "predict_seconds": predict,
            "compute_seconds": model.info["features_seconds"] + model.info["fit_seconds"] + predict,
            "cpu_seconds": time.process_time() - cpu,
            "best_iteration": model.info["best_iteration"],
            "val_roc_auc": model.info["validation"]["roc_auc"],
            "test_roc_auc": float(roc_auc_score(y_test, p_test)),
        }
        say(f"{family}: {families[family]['compute_seconds']:.1f} s")
        del model
    result["compute_others_cores"] = (_machine_busy() - busy - (_self_cpu() - cpu_self)) / (
        time.perf_counter() - start_compute
    )
    result["families"] = families
    result["compute_seconds"] = sum(f["compute_seconds"] for f in families.values())
    result["compute_cpu_seconds"] = sum(f["cpu_seconds"] for f in families.values())
    result["self_peak_mib"] = _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    inprocess_winner = max(families, key=lambda f: families[f]["val_roc_auc"])
    result["inprocess_winner"] = inprocess_winner
    result["inprocess_winner_test_roc_auc"] = families[inprocess_winner]["test_roc_auc"]

    # 3. Quality: the registered champion, and the best any model could do on these test rows.
    truth = pd.read_parquet(generated.truth)
    joined = test[[ID, LABEL]].merge(truth, on=ID, how="left", validate="one_to_one")
    if joined["true_churn_probability"].isna().any():
        raise SystemExit("benchmark: some test rows have no true probability")
    result["best_roc_auc"] = float(roc_auc_score(joined[LABEL], joined["true_churn_probability"]))
    result.update(_champion(settings))
    result["load_after"] = os.getloadavg()[0]
    say("done")
    return result


def _champion(settings: Any) -> dict[str, Any]:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from churn.registry.mlflow_registry import CHALLENGER, CHAMPION, connect_registry

    connect_registry(settings.tracking_uri)
    client = MlflowClient()
    for alias in (CHAMPION, CHALLENGER):
        try:
            version = client.get_model_version_by_alias(settings.mlflow.model_name, alias)
        except MlflowException:
            continue
        return {
            "winner_alias": alias,
            "winner_version": str(version.version),
            "winner": version.tags.get("family", "?"),
            "winner_test_roc_auc": float(version.tags["test_roc_auc"]),
        }
    raise SystemExit("benchmark: the pipeline registered no model")


# --------------------------------------------------------------------------- report


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def table(result: dict[str, Any]) -> tuple[list[tuple[str, str, str]], dict[str, float]]:
    """The rows of one run's table, and the overhead breakdown (seconds)."""
    rows: list[tuple[str, str, str]] = []
    tasks = result["tasks"]
    families = result["families"]
    for t in tasks:
        compute = t["in_task_compute"]
        detail = f"startup {t['startup']:.1f} + body {t['body']:.1f}"
        if t["family"] in families:
            f = families[t["family"]]
            detail += f" (compute {compute:.1f}, in-process {f['features_seconds'] + f['fit_seconds']:.1f})"
        elif t["name"] == "select-model" and compute is not None:
            detail += f" (predict {compute:.1f}, in-process {sum(f['predict_seconds'] for f in families.values()):.1f})"
        elif compute is not None:
            detail += f" (compute {compute:.1f})"
        detail += f" + exit {t['exit']:.1f}"
        if t["peak_mib"] is not None:
            detail += f"; peak RSS {t['peak_mib']:,.0f} MiB"
        if t["status"] != "SUCCESS":
            detail += f"; {t['status'] or 'unfinished'}"
        rows.append((f"task {t['label']}", _s(t["seconds"]), detail))

    wall, compute = result["pipeline_seconds"], result["compute_seconds"]
    in_tasks = sum(t["seconds"] for t in tasks)
    rows.append(("pipeline wall time", _s(wall), f"tasks {in_tasks:.1f} s + runner {wall - in_tasks:.1f} s"))
    for family, f in families.items():
        rows.append(
            (
                f"compute {family}",
                _s(f["compute_seconds"]),
                f"features {f['features_seconds']:.2f} + fit {f['fit_seconds']:.2f} + test predict "
                f"{f['predict_seconds']:.2f}; val ROC-AUC {f['val_roc_auc']:.4f}",
            )
        )
    rows.append(
        (
            "compute time (in-process)",
            _s(compute),
            f"features {sum(f['features_seconds'] for f in families.values()):.1f} + fits "
            f"{sum(f['fit_seconds'] for f in families.values()):.1f} + test predictions "
            f"{sum(f['predict_seconds'] for f in families.values()):.1f}; validate+read CSV "
            f"{result['inprocess_validate_seconds']:.1f} s not counted",
        )
    )
    ratio = wall / compute
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    rows.append(("ratio pipeline/compute", f"{ratio:.2f}x", f"target <= {TARGET_RATIO}: {verdict}"))
    in_task = sum(t["in_task_compute"] or 0.0 for t in tasks)
    rows.append(
        (
            "ratio pipeline/in-task compute",
            f"{wall / in_task:.2f}x" if in_task else "-",
            f"the same fits and predictions timed inside the tasks: {in_task:.1f} s",
        )
    )
    cpu_ratio = result["pipeline_cpu_seconds"] / result["compute_cpu_seconds"]
    rows.append(
        (
            "ratio in CPU time",
            f"{cpu_ratio:.2f}x",
            f"pipeline {result['pipeline_cpu_seconds']:.1f} s CPU / compute {result['compute_cpu_seconds']:.1f} s CPU",
        )
    )

    rows.append(
        (
            "overhead beyond compute",
            _s(wall - in_task),
            "pipeline wall time minus the compute timed inside the tasks (little affected by other processes)",
        )
    )
    overhead = overhead_breakdown(result)
    total = wall - compute
    for name, seconds in overhead.items():
        share = f"{100 * seconds / total:.0f}% of the overhead" if total > 0 else ""
        rows.append((f"  overhead: {name}", _s(seconds), share))

    largest = max((t for t in tasks if t["peak_mib"] is not None), key=lambda t: t["peak_mib"], default=None)
    where = f"sampled: {largest['label']} {largest['peak_mib']:,.0f} MiB" if largest else ""
    rows.append(("peak RSS, largest task", f"{result['children_peak_mib']:,.0f} MiB", where))
    rows.append(
        (
            "peak RSS, benchmark process",
            f"{result['self_peak_mib']:,.0f} MiB",
            f"{result['self_peak_pipeline_mib']:,.0f} MiB while the pipeline ran; the rest is the in-process fits",
        )
    )
    agree = "same" if result["inprocess_winner"] == result["winner"] else "DIFFERENT"
    rows.append(
        (
            "winner",
            result["winner"],
            f"v{result['winner_version']} @{result['winner_alias']}; in-process winner {result['inprocess_winner']} "
            f"({agree})",
        )
    )
    rows.append(
        (
            "winner test ROC-AUC",
            f"{result['winner_test_roc_auc']:.4f}",
            f"registry tag; in-process {result['inprocess_winner_test_roc_auc']:.4f}",
        )
    )
    rows.append(
        ("best achievable ROC-AUC", f"{result['best_roc_auc']:.4f}", "true churn probabilities, same test rows")
    )
    gap = result["best_roc_auc"] - result["winner_test_roc_auc"]
    rows.append(("gap", f"{gap:.4f}", f"{100 * gap / result['best_roc_auc']:.2f}% of the best achievable"))
    rows.append(
        (
            "CPU used by other processes",
            f"{result['pipeline_others_cores']:.2f} / {result['compute_others_cores']:.2f}",
            f"cores, on average during the pipeline / the in-process compute ({os.cpu_count()} cores; "
            f"load average {result['load_before']:.1f} before, {result['load_after']:.1f} after)",
        )
    )
    return rows, overhead


def overhead_breakdown(result: dict[str, Any]) -> dict[str, float]:
    """Pipeline wall time minus in-process compute, split where it goes; the parts add up exactly."""
    tasks = result["tasks"]
    by_group: dict[str, float] = {
        "task startup (python + kfp, x{n})": sum(t["startup"] for t in tasks),
        "task exit (outputs + process exit)": sum(t["exit"] for t in tasks),
        "load/validate/split bodies": sum(t["body"] for t in tasks if t["name"] in _DATA_STEPS),
        "train bodies beyond fit (imports, parquet, joblib)": sum(
            t["body"] - (t["in_task_compute"] or 0.0) for t in tasks if t["name"].startswith("train-model")
        ),
        "select body beyond test predictions (loads)": sum(
            t["body"] - (t["in_task_compute"] or 0.0) for t in tasks if t["name"] == "select-model"
        ),
        "register body (MLflow runs + models)": sum(t["body"] for t in tasks if t["name"] == "register-model"),
        "promote body (MLflow download + gate)": sum(t["body"] for t in tasks if t["name"] == "promote-model"),
        "compute slower in tasks than in-process": sum(t["in_task_compute"] or 0.0 for t in tasks)
        - result["compute_seconds"],
        "runner between tasks": result["pipeline_seconds"] - sum(t["seconds"] for t in tasks),
    }
    return {name.format(n=len(tasks)): seconds for name, seconds in by_group.items()}


def print_table(result: dict[str, Any]) -> None:
    rows, _ = table(result)
    header = ("measure", "value", "detail")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(2)]
    print(
        f"\nchurn training benchmark: {result['rows']:,} rows ({result['csv_mib']:,.0f} MiB CSV, generated in "
        f"{result['generate_seconds']:.1f} s), {os.cpu_count()} cores, KFP local SubprocessRunner, sqlite MLflow"
        + (f", OMP_WAIT_POLICY={result['omp_wait_policy']}" if result.get("omp_wait_policy") else "")
    )
    print(f"{header[0].ljust(widths[0])}  {header[1].rjust(widths[1])}  {header[2]}")
    print(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 6}")
    for name, value, detail in rows:
        print(f"{name.ljust(widths[0])}  {value.rjust(widths[1])}  {detail}".rstrip())


# --------------------------------------------------------------------------- import costs


def import_costs(repeat: int = 3) -> dict[str, float]:
    """Seconds a fresh interpreter spends importing what the tasks import (best of ``repeat``)."""
    modules = {
        "interpreter alone": "pass",
        "kfp executor (every task)": "import kfp.dsl.executor_main",
        "churn.stages.training (module import)": "import churn.stages.training",
        "xgboost": "import xgboost",
        "lightgbm": "import lightgbm",
        "mlflow + flavors (register, promote)": "import mlflow, mlflow.sklearn, mlflow.xgboost, mlflow.lightgbm",
    }
    env = {**os.environ, "_KFP_RUNTIME": "true"}  # as in a task: kfp then skips its client (kubernetes) imports
    costs: dict[str, float] = {}
    for name, code in modules.items():
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
            best = min(best, time.perf_counter() - start)
        costs[name] = best
    return costs


def print_imports(costs: dict[str, float]) -> None:
    base = costs["interpreter alone"]
    width = max(len(n) for n in costs)
    print("\nfresh-interpreter import cost (each task pays its own)")
    for name, seconds in costs.items():
        extra = "" if name == "interpreter alone" else f"  (+{seconds - base:.2f} s over a bare interpreter)"
        print(f"  {name.ljust(width)}  {seconds:5.2f} s{extra}")


# --------------------------------------------------------------------------- main


def _single(args: argparse.Namespace) -> None:
    progress = os.fdopen(os.dup(2), "w", buffering=1)  # survives run_local's redirection of fds 1 and 2
    result = bench_one(args.single, args.workdir, progress)
    args.result.write_text(json.dumps(result, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", action="extend", help="row counts (default: 100000 1000000)")
    parser.add_argument("--quick", action="store_true", help="20K rows only")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    parser.add_argument("--workdir", type=Path, help="keep data, task outputs and logs here (default: a temp dir)")
    parser.add_argument(
        "--omp-passive",
        action="store_true",
        help="OMP_WAIT_POLICY=PASSIVE for the pipeline tasks and the in-process fits (steadier on a shared machine)",
    )
    parser.add_argument("--single", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        _single(args)
        return

    counts = [20_000] if args.quick else (args.rows or [100_000, 1_000_000])
    workdir = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="bench-training-"))
    keep = args.workdir is not None
    figures: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "runs": [],
    }
    try:
        for rows in counts:
            folder = workdir / f"rows-{rows}"
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            out = folder / "result.json"
            command = [sys.executable, str(Path(__file__).resolve()), "--single", str(rows)]
            command += ["--workdir", str(folder), "--result", str(out)]
            env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"} if args.omp_passive else None
            done = subprocess.run(command, check=False, env=env)
            if done.returncode != 0:
                raise SystemExit(f"benchmark: {rows:,} rows failed (exit {done.returncode}); logs in {folder}")
            result = json.loads(out.read_text())
            result["overhead"] = overhead_breakdown(result)
            figures["runs"].append(result)
            print_table(result)
            sys.stdout.flush()
        figures["imports"] = import_costs()
        print_imports(figures["imports"])
    finally:
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, default=str))
        if keep:
            print(f"\nwork folder: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
