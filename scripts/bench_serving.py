"""Benchmark: serving latency and throughput, ours against MLServer's MLflow runtime, on the same model and rows.

Levels, all on the same raw rows and the same logged MLflow model (an XGBoost champion
by default):

  L0  in-process predict on already preprocessed rows (ChurnModel.predict_matrix)
  L1  in-process preprocess + predict of raw records (ChurnModel.predict_proba)
  L3  our predictor alone (KServe server), V2 over REST and over gRPC
  L4  transformer + predictor (raw records in; transformer->predictor over gRPC, and over REST)
  L5  single-pass mode (raw records in; one KServe server runs contract, features and model)
  MLS MLServer 1.7.1 + mlserver-mlflow (KServe's stock runtime for ``modelFormat: mlflow``),
      installed in its own venv (.venv-mlserver, from scripts/mlserver-requirements.txt), serving
      the same model directory, V2 over REST and gRPC.

Clients are tritonclient (HTTP and gRPC) in this process; each single-row figure is
sequential (one client) and with 8 concurrent clients (threads, one client each);
batches are 1,000 rows. Servers and clients share the machine's cores, as they would
on one node. A front door's batch rate is compared with L1's measured beside it, in
alternating blocks (the median of neighbouring blocks' ratios, with a bootstrap
95% interval), not with the run's first L1 figure: a shared machine's load moves over the
run's minutes, and the ratio should not move with it.

The prediction log (issue 15) is measured apart: the transformer path (gRPC hop), single
rows over REST and gRPC, with the log off and on (a local folder, 1 s flush): both pairs
of servers run at once and the client alternates between them in short blocks, so that a
busy shared machine slows both alike. Run:

    .venv/bin/python scripts/bench_serving.py            # full run (a few minutes)
    .venv/bin/python scripts/bench_serving.py --quick    # fewer requests
    .venv/bin/python scripts/bench_serving.py --log-only # only the prediction-log comparison
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from churn.serving.local import ServiceConfig

ROOT = Path(__file__).resolve().parent.parent
NAME = "churn-model"
BATCH = 1_000


# --------------------------------------------------------------------------- model and rows
def prepare(rows: int, family: str, workdir: Path) -> tuple[Any, Path, list[dict[str, Any]], str]:
    """Train one model, log and register it in a local MLflow store; return it, its directory and test rows."""
    import mlflow

    from churn.config import get_settings
    from churn.data import generate_customers
    from churn.registry.mlflow_registry import CHAMPION, connect, log_candidate, register_challenger
    from churn.training import split_frame, train_family

    tracking = f"sqlite:///{workdir}/mlflow.db"
    connect(tracking, experiment="bench-serving", artifact_location=(workdir / "artifacts").as_uri())
    parts = split_frame(generate_customers(rows, "2026-01-05", seed=42).frame, seed=42)
    model = train_family(family, parts["train"], parts["validation"], get_settings().training.params(family))
    with mlflow.start_run():
        uri = log_candidate(model, example=parts["test"].head(3), metrics={}, tags={})
    version = register_challenger(uri, NAME, tags={"family": family})
    mlflow.MlflowClient().set_registered_model_alias(NAME, CHAMPION, version)
    model_dir = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/{version}", dst_path=str(workdir / "m")))
    test = parts["test"].drop(columns=["churned"])
    records = json.loads(test.to_json(orient="records", date_format="iso"))
    records = [{k: (v[:10] if k.endswith("_date") and v else v) for k, v in r.items()} for r in records]
    return model, model_dir, records, tracking


# --------------------------------------------------------------------------- measuring
def latency_run(call: Callable[[int], Any], n: int, warmup: int = 50) -> dict[str, float]:
    for i in range(warmup):
        call(i)
    times = np.empty(n)
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        call(i)
        times[i] = time.perf_counter() - t
    wall = time.perf_counter() - start
    return {
        "rps": n / wall,
        "p50_ms": float(np.percentile(times, 50) * 1e3),
        "p99_ms": float(np.percentile(times, 99) * 1e3),
    }


def concurrent_run(make_call: Callable[[], Callable[[int], Any]], clients: int, n_each: int) -> dict[str, float]:
    """``clients`` threads, each with its own client made in its thread (tritonclient.http is greenlet-bound)."""
    times: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def worker(k: int) -> None:
        try:
            call = make_call()
            for i in range(10):
                call(i)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
            return
        barrier.wait()
        try:
            for i in range(n_each):
                t = time.perf_counter()
                call(i)
                times[k].append(time.perf_counter() - t)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a worker failed; its error is raised below
        barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    flat = np.concatenate([np.asarray(t) for t in times])
    return {
        "rps": clients * n_each / wall,
        "p50_ms": float(np.percentile(flat, 50) * 1e3),
        "p99_ms": float(np.percentile(flat, 99) * 1e3),
    }


def batch_run(call: Callable[[int], Any], repeats: int) -> dict[str, float]:
    call(0)
    start = time.perf_counter()
    for i in range(repeats):
        call(i)
    return {"rows_per_s": repeats * BATCH / (time.perf_counter() - start)}


# --------------------------------------------------------------------------- clients
class Client:
    """tritonclient calls of one endpoint: raw records (transformer) or the model matrix (predictors)."""

    def __init__(
        self,
        protocol: str,
        url: str,
        *,
        matrix_input: str | None,
        records: list[dict[str, Any]],
        matrix: np.ndarray,
        columns: bool = False,
        binary: bool = False,
    ) -> None:
        self.protocol, self.url, self.matrix_input, self.columns = protocol, url, matrix_input, columns
        self.records, self.matrix = records, matrix
        self.texts = np.asarray([json.dumps(r).encode() for r in records], dtype=np.object_)
        # One tensor per raw column (the other request shape the transformer takes): FP64 or BYTES.
        self.column_arrays = {}
        for name in records[0]:
            values = [r[name] for r in records]
            if isinstance(next((v for v in values if v is not None), ""), str):
                self.column_arrays[name] = ("BYTES", np.asarray([(v or "").encode() for v in values], np.object_))
            else:
                self.column_arrays[name] = ("FP64", np.asarray([np.nan if v is None else v for v in values], float))
        # Plain V2 JSON over REST (MLServer does not read tritonclient's binary extension), unless
        # `binary`: the tensors in the binary data extension (tritonclient's default), the fast REST form for batches.
        self.json = {"binary_data": False} if protocol == "http" and not binary else {}

    def make(self, rows: int = 1) -> Callable[[int], Any]:
        if self.protocol == "http":
            import tritonclient.http as tc
        else:
            import tritonclient.grpc as tc  # type: ignore[no-redef]
        client = tc.InferenceServerClient(url=self.url)
        n = len(self.records)

        def call(i: int) -> Any:
            start = (i * rows) % (n - rows)
            if self.matrix_input:
                item = tc.InferInput(self.matrix_input, [rows, self.matrix.shape[1]], "FP64")
                item.set_data_from_numpy(self.matrix[start : start + rows], **self.json)
            elif self.columns:
                items = []
                for name, (datatype, array) in self.column_arrays.items():
                    items.append(tc.InferInput(name, [rows], datatype))
                    items[-1].set_data_from_numpy(array[start : start + rows], **self.json)
            else:
                item = tc.InferInput("records", [rows], "BYTES")
                item.set_data_from_numpy(self.texts[start : start + rows], **self.json)
            result = client.infer(NAME, items if self.columns else [item])
            out = result.as_numpy(
                result.get_response()["outputs"][0]["name"]
                if self.protocol == "http"
                else result.get_response().outputs[0].name
            )
            assert out is not None and out.shape[0] == rows
            return out

        return call


# --------------------------------------------------------------------------- MLServer
def mlserver_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if python.is_file():
        return python
    uv = shutil.which("uv") or str(ROOT / ".tools/uv/bin/uv")
    print(f"installing MLServer into {venv} (once)...", file=sys.stderr)
    subprocess.run([uv, "venv", str(venv), "--python", "3.11", "-q"], check=True)
    requirements = ROOT / "scripts" / "mlserver-requirements.txt"
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), "-r", str(requirements)], check=True)
    return python


def start_mlserver(python: Path, model_dir: Path, workdir: Path, ports: dict[str, int]) -> subprocess.Popen[bytes]:
    folder = workdir / "mlserver"
    folder.mkdir()
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "http_port": ports["http"],
                "grpc_port": ports["grpc"],
                "metrics_port": ports["metrics"],
                "host": "127.0.0.1",
            }
        )
    )
    (folder / "model-settings.json").write_text(
        json.dumps(
            {"name": NAME, "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": str(model_dir)}}
        )
    )
    log = (workdir / "mlserver.log").open("wb")
    process = subprocess.Popen(
        [str(python.parent / "mlserver"), "start", str(folder)], stdout=log, stderr=log, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"MLServer exited: {(workdir / 'mlserver.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports['http']}/v2/models/{NAME}/ready", timeout=1):
                return process
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("MLServer was not ready in 120 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


#: Paired single-row blocks (rounds, requests per block), full run and --quick.
PAIRED = {False: (30, 200), True: (16, 100)}


def alternating_blocks(calls: dict[str, Callable[[int], Any]], rounds: int, block: int) -> dict[str, list[float]]:
    """Calls per second of each of two ``calls``, in ``rounds`` alternating blocks of ``block`` calls each.

    Neighbouring blocks see the same machine load, so their ratio is the comparison; the
    order within a round alternates, so neither side always goes first.
    """
    first, second = calls
    rates: dict[str, list[float]] = {first: [], second: []}
    for r in range(rounds):
        for side in (first, second) if r % 2 == 0 else (second, first):
            start = time.perf_counter()
            for i in range(block):
                calls[side](r * block + i)
            rates[side].append(block / (time.perf_counter() - start))
    return rates


def paired_single_row(ours: Client, peer: Client, rounds: int, block: int) -> dict[str, Any]:
    """Single-row req/s of two servers, both up, in alternating blocks of one sequential client.

    Measured one after the other, each server's figure carries the machine's load of its own
    minutes (MLServer's single-row gRPC moved from 184 to 265 req/s between runs of this
    script): neighbouring blocks see the same load, so their ratio is the comparison.
    """
    calls = {"ours": ours.make(), "peer": peer.make()}
    for i in range(50):
        for call in calls.values():
            call(i)
    rps = alternating_blocks(calls, rounds, block)
    return {**rps, "block": block, "ratio": ratio_summary(rps["ours"], rps["peer"])}


def batch_ratio(r: dict[str, Any], key: str) -> str:
    """Level ``key``'s batch rows/s over L1's beside it: the paired blocks' median, quartiles and interval."""
    batch = r[key]["batch"]
    q = batch["ratio"]
    return (
        f"{q['median']:.2f}x (IQR {q['q1']:.2f}-{q['q3']:.2f}, 95% CI {q['ci_low']:.2f}-{q['ci_high']:.2f}; "
        f"{batch['rows_per_s']:,.0f} / {batch['l1_rows_per_s']:,.0f} rows/s)"
    )


# --------------------------------------------------------------------------- the run
def paired_batch(call: Callable[[int], Any], l1_batch: Callable[[int], Any], rounds: int, block: int) -> dict[str, Any]:
    """A front door's batch rows/s and L1's, in alternating blocks of ``block`` batches (as the single-row pairs).

    The machine's load moves over a run (L1 alone moved 2x between runs of this script), so
    each block of the front door is compared with the L1 block beside it: the ratio is the
    median of the ``rounds`` neighbouring pairs, with its quartiles and a bootstrap 95% CI.
    """
    call(0)
    l1_batch(0)
    rows = {
        side: [rate * BATCH for rate in rates]
        for side, rates in alternating_blocks({"ours": call, "l1": l1_batch}, rounds, block).items()
    }
    return {
        "rows_per_s": float(np.median(rows["ours"])),
        "l1_rows_per_s": float(np.median(rows["l1"])),
        "ratio": ratio_summary(rows["ours"], rows["l1"]),
        "blocks": rounds,
        "block": block,
    }


#: Paired batch blocks (rounds, batches per block), full run and --quick.
PAIRED_BATCH = {False: (20, 5), True: (10, 3)}


def measure_endpoint(
    client: Client,
    n: int,
    n_each: int,
    repeats: int,
    l1_batch: Callable[[int], Any] | None = None,
    paired: tuple[int, int] = PAIRED_BATCH[False],
) -> dict[str, Any]:
    """Single-row latency, 8 clients, batches; with ``l1_batch``, batches paired with L1's (:func:`paired_batch`)."""
    if l1_batch is None:
        batch = batch_run(client.make(BATCH), repeats)
    else:
        batch = paired_batch(client.make(BATCH), l1_batch, *paired)
    return {
        "single": latency_run(client.make(), n),
        "concurrent8": concurrent_run(client.make, 8, n_each),
        "batch": batch,
    }


def measure_forms(
    config: ServiceConfig,
    level: str,
    records: list[dict[str, Any]],
    matrix: np.ndarray,
    n: int,
    n_each: int,
    repeats: int,
    l1_batch: Callable[[int], Any] | None = None,
    paired: tuple[int, int] = PAIRED_BATCH[False],
) -> dict[str, Any]:
    """The front door's other request forms: one tensor per raw column (gRPC, REST binary), records in REST binary.

    tritonclient's REST client sends tensors in the binary extension unless told otherwise, so
    the binary records row is what that client does by default; the plain records row (JSON
    strings inside the JSON body) is what any HTTP client can send.
    """
    result = {}
    for proto, port, columns, suffix in (
        ("grpc", config.transformer_grpc_port, True, "columns"),
        ("http", config.transformer_http_port, True, "columns"),
        ("http", config.transformer_http_port, False, "binary_records"),
    ):
        print(f"{level} {config.mode} {proto}, {suffix}...", file=sys.stderr)
        client = Client(
            proto,
            f"{config.host}:{port}",
            matrix_input=None,
            records=records,
            matrix=matrix,
            columns=columns,
            binary=proto == "http",
        )
        result[f"{level}_{proto}_{suffix}"] = measure_endpoint(client, n, n_each, repeats, l1_batch, paired)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="Rows to train the served model on.")
    parser.add_argument("--family", default="xgboost", help="Model family to serve.")
    parser.add_argument("--quick", action="store_true", help="Fewer requests per measurement.")
    parser.add_argument("--mlserver-venv", type=Path, default=ROOT / ".venv-mlserver")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this file.")
    parser.add_argument("--log-only", action="store_true", help="Only the prediction log off/on comparison.")
    parser.add_argument("--log-rounds", type=int, default=40, help="Alternating off/on blocks of that comparison.")
    args = parser.parse_args()
    n, n_each, repeats = (300, 60, 5) if args.quick else (2_000, 250, 30)

    from churn.serving.local import LocalService, ServiceConfig, free_port

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    python = None if args.log_only else mlserver_python(args.mlserver_venv)
    result: dict[str, Any] = {"family": args.family, "train_rows": args.rows, "requests": n}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        workdir = Path(tmp)
        print(f"training {args.family} on {args.rows:,} rows...", file=sys.stderr)
        model, model_dir, records, tracking = prepare(args.rows, args.family, workdir)
        matrix = np.ascontiguousarray(model.features.transform(records))
        print(f"{len(records):,} test rows, {matrix.shape[1]} features", file=sys.stderr)

        result["prediction_log"] = prediction_log_comparison(
            model_dir, tracking, records, matrix, workdir, n, n_each, args.log_rounds
        )
        if args.log_only:
            print_log_table(result["prediction_log"], n)
            if args.json:
                args.json.write_text(json.dumps(result, indent=2))
            return
        assert python is not None
        slices = len(records) // BATCH
        if slices < 1:
            raise SystemExit(f"need at least {BATCH:,} test rows; train on more rows (--rows)")
        # L0 / L1: in-process
        result["L0"] = {
            "single": latency_run(lambda i: model.predict_matrix(matrix[i % len(matrix)][None, :]), n),
            "batch": batch_run(
                lambda i: model.predict_matrix(matrix[(i % slices) * BATCH : (i % slices + 1) * BATCH]), repeats
            ),
        }

        def l1_batch(i: int) -> Any:
            return model.predict_proba(records[(i % slices) * BATCH : (i % slices + 1) * BATCH])

        paired = PAIRED_BATCH[args.quick]
        result["L1"] = {
            "single": latency_run(lambda i: model.predict_proba(records[i % len(records)]), n),
            "batch": batch_run(l1_batch, repeats),
        }
        for hop in ("grpc-v2", "v2"):
            config = ServiceConfig.on_free_ports(
                str(model_dir), tracking_uri=tracking, predictor_protocol=hop, log_dir=workdir / f"logs-{hop}"
            )
            with LocalService(config).start(timeout=120):
                host = config.host
                if hop == "grpc-v2":  # the predictor alone does not depend on the hop: measure it once
                    for proto, port in (("http", config.predictor_http_port), ("grpc", config.predictor_grpc_port)):
                        print(f"L3 predictor {proto}...", file=sys.stderr)
                        client = Client(
                            proto, f"{host}:{port}", matrix_input="features", records=records, matrix=matrix
                        )
                        result[f"L3_{proto}"] = measure_endpoint(client, n, n_each, repeats)
                for proto, port in (("http", config.transformer_http_port), ("grpc", config.transformer_grpc_port)):
                    print(f"L4 transformer {proto} (hop {hop})...", file=sys.stderr)
                    client = Client(proto, f"{host}:{port}", matrix_input=None, records=records, matrix=matrix)
                    result[f"L4_{proto}_hop_{hop}"] = measure_endpoint(client, n, n_each, repeats, l1_batch, paired)
                if hop == "grpc-v2":
                    result |= measure_forms(config, "L4", records, matrix, n, n_each, repeats, l1_batch, paired)
        config = ServiceConfig.on_free_ports(str(model_dir), tracking_uri=tracking, mode="single", log_dir=workdir)
        with LocalService(config).start(timeout=120):
            single_pass = {}
            for proto, port in (("http", config.transformer_http_port), ("grpc", config.transformer_grpc_port)):
                print(f"L5 single pass {proto}...", file=sys.stderr)
                client = Client(proto, f"{config.host}:{port}", matrix_input=None, records=records, matrix=matrix)
                single_pass[proto] = client
                result[f"L5_{proto}"] = measure_endpoint(client, n, n_each, repeats, l1_batch, paired)
            result |= measure_forms(config, "L5", records, matrix, n, n_each, repeats, l1_batch, paired)

            # MLServer while the single-pass server is still up (idle), for the paired blocks below.
            ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
            process = start_mlserver(python, model_dir, workdir, ports)
            try:
                for proto in ("http", "grpc"):
                    print(f"MLServer {proto}...", file=sys.stderr)
                    client = Client(
                        proto, f"127.0.0.1:{ports[proto]}", matrix_input="input-0", records=records, matrix=matrix
                    )
                    result[f"MLS_{proto}"] = measure_endpoint(client, n, n_each, repeats)
                    print(f"single pass vs MLServer {proto}, paired blocks...", file=sys.stderr)
                    result[f"paired_{proto}"] = paired_single_row(single_pass[proto], client, *PAIRED[args.quick])
            finally:
                stop(process)
    print_table(result)
    print_log_table(result["prediction_log"], n)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


def prediction_log_comparison(
    model_dir: Path,
    tracking: str,
    records: list[dict[str, Any]],
    matrix: np.ndarray,
    workdir: Path,
    n: int,
    n_each: int,
    rounds: int,
) -> dict[str, Any]:
    """Single-row req/s through the transformer (gRPC hop) with the prediction log off and on.

    Both pairs of servers run at once (one logging to a folder, one not) and the client
    alternates between them in short blocks (off-on, then on-off, ...), so that the load of a
    shared machine falls on both alike. Each block gives one on/off ratio of two neighbouring
    measurements; the table reports the median of those ratios and their spread.
    """
    from churn.predictions.log import read_prediction_log
    from churn.serving.local import LocalService, ServiceConfig

    log_root = workdir / "predictions"
    configs = {
        mode: ServiceConfig.on_free_ports(
            str(model_dir),
            tracking_uri=tracking,
            log_dir=workdir / f"logs-log-{mode}",
            extra_env={"CHURN_SERVING__PREDICTION_LOG_URI": str(log_root)} if mode == "on" else {},
        )
        for mode in ("off", "on")
    }
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        mode: {f"{proto}_{kind}": [] for proto in ("http", "grpc") for kind in ("single", "concurrent8")}
        for mode in configs
    }
    blocks = max(2, rounds)
    with LocalService(configs["off"]).start(timeout=120), LocalService(configs["on"]).start(timeout=120):
        for proto in ("http", "grpc"):
            clients = {
                mode: Client(
                    proto,
                    f"{c.host}:{c.transformer_http_port if proto == 'http' else c.transformer_grpc_port}",
                    matrix_input=None,
                    records=records,
                    matrix=matrix,
                )
                for mode, c in configs.items()
            }
            calls = {mode: client.make(1) for mode, client in clients.items()}
            for block in range(blocks):
                print(f"prediction log off/on, {proto}, block {block + 1}/{blocks}...", file=sys.stderr)
                for mode in ("off", "on") if block % 2 == 0 else ("on", "off"):
                    runs[mode][f"{proto}_single"].append(latency_run(calls[mode], max(50, n // blocks), warmup=10))
                    runs[mode][f"{proto}_concurrent8"].append(
                        concurrent_run(lambda c=clients[mode]: c.make(1), 8, max(10, n_each // blocks))
                    )
    return {"runs": runs, "logged_records": len(read_prediction_log(log_root)), **log_costs(workdir / "costs")}


def log_costs(folder: Path, per_flush: int = 400) -> dict[str, float]:
    """In-process costs of the log: one ``record`` (on the request path) and one flush (on the writer thread)."""
    from churn.predictions.logger import PredictionLogger

    logger = PredictionLogger(folder, model_name=NAME, model_version="1", flush_seconds=3600)
    probability, label = np.array([0.42]), np.array([0], dtype=np.int32)
    for i in range(per_flush):  # warm-up, and one flush to import what writing needs
        logger.record(f"warm-{i}", [f"C-{i}"], probability, label)
    logger.flush()
    n = 20_000
    start = time.perf_counter()
    for i in range(n):
        logger.record(f"req-{i}", [f"C-{i}"], probability, label)
    record_us = (time.perf_counter() - start) / n * 1e6
    logger.flush()
    flushes = []
    for _ in range(10):
        for i in range(per_flush):
            logger.record(f"req-{i}", [f"C-{i}"], probability, label)
        start = time.perf_counter()
        logger.flush()
        flushes.append(time.perf_counter() - start)
    return {"record_us": record_us, "flush_ms": float(np.median(flushes) * 1e3), "flush_records": per_flush}


def ratio_summary(on: list[float], off: list[float], seed: int = 0) -> dict[str, float]:
    """The on/off ratios of neighbouring blocks: median, quartiles and a bootstrap 95% interval of the median."""
    ratios = np.asarray(on) / np.asarray(off)
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(ratios, size=(2_000, len(ratios)), replace=True), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    q1, q3 = np.percentile(ratios, [25, 75])
    return {
        "median": float(np.median(ratios)),
        "q1": float(q1),
        "q3": float(q3),
        "ci_low": float(low),
        "ci_high": float(high),
    }


def print_log_table(r: dict[str, Any], n: int) -> None:
    """Per path: req/s off and on (medians), and the median of the blocks' on/off ratios with its spread."""
    runs = r["runs"]
    blocks = len(runs["off"]["http_single"])
    print(
        f"\nprediction log: transformer path (hop gRPC), single rows, both settings served at once, {blocks} "
        f"alternating off/on blocks; ratio = median of the {blocks} blocks' on/off req/s, IQR = its quartiles, "
        f"95% CI = bootstrap interval of that median; {r['logged_records']:,} records logged\n"
    )
    head = f"{'request path':<20}{'clients':>8}{'off req/s':>11}{'on req/s':>10}{'ratio':>8}{'IQR':>15}{'95% CI':>15}"
    head += f"{'p50 off/on ms':>16}"
    print(head)
    print("-" * len(head))
    for proto, name in (("http", "transformer REST"), ("grpc", "transformer gRPC")):
        for kind, clients in (("single", 1), ("concurrent8", 8)):
            off = [m["rps"] for m in runs["off"][f"{proto}_{kind}"]]
            on = [m["rps"] for m in runs["on"][f"{proto}_{kind}"]]
            p50 = [float(np.median([m["p50_ms"] for m in runs[mode][f"{proto}_{kind}"]])) for mode in ("off", "on")]
            q = ratio_summary(on, off)
            spread = f"{q['q1']:.2f}-{q['q3']:.2f}"
            interval = f"{q['ci_low']:.3f}-{q['ci_high']:.3f}"
            print(
                f"{name:<20}{clients:>8}{np.median(off):>11,.0f}{np.median(on):>10,.0f}{q['median']:>8.3f}"
                f"{spread:>15}{interval:>15}{f'{p50[0]:.2f} / {p50[1]:.2f}':>16}"
            )
    print(
        f"\nin-process: one answer queued on the request path {r['record_us']:.1f} us; one flush of "
        f"{r['flush_records']} answers (one gzipped JSON-lines object, fsync, rename) {r['flush_ms']:.1f} ms "
        "on the writer thread"
    )


def print_table(r: dict[str, Any]) -> None:
    rows = [
        ("L0 in-process predict (matrix)", "L0"),
        ("L1 in-process preprocess+predict", "L1"),
        ("L3 predictor REST", "L3_http"),
        ("L3 predictor gRPC", "L3_grpc"),
        ("L4 transformer REST (hop gRPC)", "L4_http_hop_grpc-v2"),
        ("L4 transformer gRPC (hop gRPC)", "L4_grpc_hop_grpc-v2"),
        ("L4 transformer gRPC columns (hop gRPC)", "L4_grpc_columns"),
        ("L4 transformer REST binary columns", "L4_http_columns"),
        ("L4 transformer REST binary records", "L4_http_binary_records"),
        ("L4 transformer REST (hop REST)", "L4_http_hop_v2"),
        ("L4 transformer gRPC (hop REST)", "L4_grpc_hop_v2"),
        ("L5 single pass REST", "L5_http"),
        ("L5 single pass gRPC", "L5_grpc"),
        ("L5 single pass gRPC columns", "L5_grpc_columns"),
        ("L5 single pass REST binary columns", "L5_http_columns"),
        ("L5 single pass REST binary records", "L5_http_binary_records"),
        ("MLServer 1.7 mlflow REST", "MLS_http"),
        ("MLServer 1.7 mlflow gRPC", "MLS_grpc"),
    ]
    print(
        f"\nserving benchmark: {r['family']} trained on {r['train_rows']:,} rows; "
        f"single-row figures over {r['requests']:,} requests; batches of {BATCH:,} rows\n"
    )
    head = (
        f"{'level':<40}{'1 client req/s':>15}{'p50 ms':>8}{'p99 ms':>8}{'8 clients req/s':>17}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'batch rows/s':>14}"
    )
    print(head)
    print("-" * len(head))
    for label, key in rows:
        m = r[key]
        one, eight = m["single"], m.get("concurrent8")
        conc = (
            f"{eight['rps']:>17,.0f}{eight['p50_ms']:>8.2f}{eight['p99_ms']:>8.2f}"
            if eight
            else f"{'-':>17}{'-':>8}{'-':>8}"
        )
        print(
            f"{label:<40}{one['rps']:>15,.0f}{one['p50_ms']:>8.2f}{one['p99_ms']:>8.2f}{conc}"
            f"{m['batch']['rows_per_s']:>14,.0f}"
        )

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x"

    print("\nratios (aim in brackets)")
    for proto in ("http", "grpc"):
        ours, peer = r[f"L3_{proto}"], r[f"MLS_{proto}"]
        one = ratio(ours["single"]["rps"], peer["single"]["rps"])
        print(
            f"  predictor / MLServer single-row req/s, {proto:<4}  1 client {one}"
            f", 8 clients {ratio(ours['concurrent8']['rps'], peer['concurrent8']['rps'])}   [>= 1.5x]"
        )
    for proto in ("http", "grpc"):
        for hop in ("grpc-v2", "v2"):
            path, alone = r[f"L4_{proto}_hop_{hop}"], r[f"L3_{proto}"]
            print(
                f"  transformer path / predictor alone, {proto:<4} hop {hop:<7}  1 client "
                f"{ratio(path['single']['rps'], alone['single']['rps'])}, 8 clients "
                f"{ratio(path['concurrent8']['rps'], alone['concurrent8']['rps'])}   [>= 0.5x]"
            )
    for label, key in (
        ("http records", "L4_http_hop_grpc-v2"),
        ("grpc records", "L4_grpc_hop_grpc-v2"),
        ("grpc columns", "L4_grpc_columns"),
        ("http binary columns", "L4_http_columns"),
        ("http binary records", "L4_http_binary_records"),
    ):
        print(f"  transformer {BATCH:,}-row batch / L1 rows/s, {label:<19}  {batch_ratio(r, key)}   [>= 0.5x]")
    columns = r["L4_grpc_columns"]
    print(
        f"  transformer path / predictor alone, grpc columns hop grpc-v2  1 client "
        f"{ratio(columns['single']['rps'], r['L3_grpc']['single']['rps'])}, 8 clients "
        f"{ratio(columns['concurrent8']['rps'], r['L3_grpc']['concurrent8']['rps'])}   [>= 0.5x]"
    )
    print("  end to end, raw records in (ours) / MLServer fed the ready feature matrix, single row:")
    for label, key in (("single pass", "L5"), ("transformer, hop gRPC", "L4")):
        for proto in ("http", "grpc"):
            ours = r[f"{key}_{proto}" if key == "L5" else f"{key}_{proto}_hop_grpc-v2"]
            peer = r[f"MLS_{proto}"]
            aim = "   [>= 1.5x]" if key == "L5" else ""
            print(
                f"    {label:<22} {proto:<4}  1 client {ratio(ours['single']['rps'], peer['single']['rps'])}"
                f", 8 clients {ratio(ours['concurrent8']['rps'], peer['concurrent8']['rps'])}{aim}"
            )
    for proto in ("http", "grpc"):
        paired = r.get(f"paired_{proto}")
        if paired:
            q = paired["ratio"]
            print(
                f"    single pass / MLServer {proto:<4} paired: {len(paired['ours'])} alternating blocks of "
                f"{paired['block']} requests, 1 client: median {q['median']:.2f}x (IQR {q['q1']:.2f}-{q['q3']:.2f}, "
                f"95% CI {q['ci_low']:.2f}-{q['ci_high']:.2f}); req/s {np.median(paired['ours']):,.0f} / "
                f"{np.median(paired['peer']):,.0f}   [>= 1.5x]"
            )
    for label, key in (
        ("http records", "L5_http"),
        ("grpc records", "L5_grpc"),
        ("grpc columns", "L5_grpc_columns"),
        ("http binary columns", "L5_http_columns"),
        ("http binary records", "L5_http_binary_records"),
    ):
        print(f"  single pass {BATCH:,}-row batch / L1 rows/s, {label:<19}  {batch_ratio(r, key)}   [>= 0.5x]")


if __name__ == "__main__":
    main()
