"""Benchmark: the images' sizes, build times and the serving image's cold start, beside the component image.

Builds the three images with scripts/build_images.sh (the engine it picks: podman here),
then starts KServe's predictor (and the transformer) from a fresh container on a LightGBM
champion's model directory mounted at /mnt/models, as KServe runs them, and times
`run` -> V2 ready (``GET /v2/models/<name>/ready`` answers 200). The same predictor is also
started from the component image (the training stack, which the serving image used to be),
so the two stand side by side. Aims: serving image <= 700 MB, cold start <= 10 s.

    .venv/bin/python scripts/bench_images.py                 # build (cached layers) + 5 starts each
    .venv/bin/python scripts/bench_images.py --build cold    # rebuild every layer first (minutes)
    .venv/bin/python scripts/bench_images.py --build skip    # images already built
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
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench_serving import prepare  # noqa: E402
from churn.serving.local import free_port  # noqa: E402

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
REGISTRY = os.environ.get("CHURN_IMAGE_REGISTRY", "ghcr.io/churn-mlops")
IMAGES = {name: f"{REGISTRY}/{name}:{VERSION}" for name in ("churn", "churn-serving", "mlflow")}
MODEL = "churn"
SIZE_AIM_MB, START_AIM_S = 700, 10.0


def engine_env() -> tuple[str, dict[str, str]]:
    """The engine scripts/container_env.sh picks, and the environment it exports."""
    probe = subprocess.run(
        ["bash", "-c", "source scripts/container_env.sh >&2 && env -0"], cwd=ROOT, capture_output=True, text=True
    )
    if probe.returncode != 0:
        sys.exit(f"no container engine: {probe.stderr[-2000:]}")
    env = dict(item.split("=", 1) for item in probe.stdout.split("\0") if "=" in item)
    return env["CONTAINER_ENGINE"], env


def build(mode: str, env: dict[str, str]) -> dict[str, float]:
    """Seconds each image took to build (scripts/build_images.sh prints them)."""
    if mode == "skip":
        return {}
    run_env = {**env, "NO_CACHE": "1" if mode == "cold" else "0", "CHURN_IMAGE_REGISTRY": REGISTRY}
    done = subprocess.run(["bash", "scripts/build_images.sh"], cwd=ROOT, env=run_env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"build failed:\n{(done.stdout + done.stderr)[-4000:]}")
    seconds = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in IMAGES.values() and parts[2] == "s":
            seconds[parts[0]] = float(parts[1])
    return seconds


def cold_start(engine: str, env: dict[str, str], image: str, role: str, model_dir: Path, predictor: str) -> float:
    """Seconds from `run` of a fresh container to V2 ready for ``role`` (predictor or transformer)."""
    port = free_port()
    name = f"churn-bench-{role}-{port}"
    args = ["--model_dir=/mnt/models", f"--model_name={MODEL}", "--http_port=8080"]
    if role == "transformer":
        args += [f"--predictor_host={predictor}", "--predictor_protocol=grpc-v2"]
    else:
        args += ["--grpc_port=8081"]
    command = [
        engine, "run", "-d", "--name", name, "--user", "10001:10001", "--read-only", "--cap-drop", "ALL",
        "--env", "HOME=/tmp", "--env", "OMP_WAIT_POLICY=PASSIVE",
        "--volume", f"{model_dir}:/mnt/models:ro", "--publish", f"127.0.0.1:{port}:8080",
        "--entrypoint", "python", image, "-m", f"churn.serving.{role}", *args,
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    try:
        url = f"http://127.0.0.1:{port}/v2/models/{MODEL}/ready"
        while time.perf_counter() - start < 120:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        logs = subprocess.run([engine, "logs", name], env=env, capture_output=True, text=True)
        sys.exit(f"{image} {role} not ready after 120 s:\n{(logs.stdout + logs.stderr)[-3000:]}")
    finally:
        subprocess.run([engine, "rm", "-f", "-t", "1", name], env=env, capture_output=True)


def container_address(engine: str, env: dict[str, str], name: str) -> str:
    info = json.loads(subprocess.run([engine, "inspect", name], env=env, capture_output=True, text=True).stdout)[0]
    return str(
        info["NetworkSettings"]["IPAddress"] or next(iter(info["NetworkSettings"]["Networks"].values()))["IPAddress"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", choices=["cached", "cold", "skip"], default="cached")
    parser.add_argument("--starts", type=int, default=5, help="Cold starts per image and role.")
    parser.add_argument(
        "--family", default="lightgbm", help="Family of the served model (LightGBM: the usual champion)."
    )
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()

    engine, env = engine_env()
    built = build(args.build, env)
    sizes = {
        tag: int(json.loads(subprocess.run([engine, "image", "inspect", tag], env=env, capture_output=True,
                                           text=True, check=True).stdout)[0]["Size"])
        for tag in IMAGES.values()
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        _, model_dir, _, _ = prepare(args.rows, args.family, Path(tmp))
        for path in [model_dir, *model_dir.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        starts: dict[tuple[str, str], list[float]] = {}
        for tag in (IMAGES["churn-serving"], IMAGES["churn"]):
            starts[(tag, "predictor")] = [
                cold_start(engine, env, tag, "predictor", model_dir, "") for _ in range(args.starts)
            ]
        # The transformer needs a predictor to point at (it only checks the address at start).
        port_name = f"churn-bench-target-{free_port()}"
        subprocess.run(
            [engine, "run", "-d", "--name", port_name, "--volume", f"{model_dir}:/mnt/models:ro", "--user", "10001",
             "--env", "HOME=/tmp", IMAGES["churn-serving"]],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        try:
            target = f"{container_address(engine, env, port_name)}:8081"
            starts[(IMAGES["churn-serving"], "transformer")] = [
                cold_start(engine, env, IMAGES["churn-serving"], "transformer", model_dir, target)
                for _ in range(args.starts)
            ]
        finally:
            subprocess.run([engine, "rm", "-f", "-t", "1", port_name], env=env, capture_output=True)

    print(f"\nengine: {engine}; build mode: {args.build}; model: {args.family}; {args.starts} cold starts each")
    header = f"{'image':45} {'size MB':>8} {'build s':>8}  {'role':11} {'start p50 s':>11} {'start max s':>11}"
    print(header)
    print("-" * len(header))
    for tag in IMAGES.values():
        roles = [role for (t, role) in starts if t == tag] or ["-"]
        for i, role in enumerate(roles):
            times = starts.get((tag, role), [])
            p50 = f"{statistics.median(times):.2f}" if times else "-"
            worst = f"{max(times):.2f}" if times else "-"
            size = f"{sizes[tag] / 1e6:,.0f}" if i == 0 else ""
            secs = f"{built[tag]:.0f}" if i == 0 and tag in built else ("-" if i == 0 else "")
            print(f"{tag if i == 0 else '':45} {size:>8} {secs:>8}  {role:11} {p50:>11} {worst:>11}")
    serving, component = sizes[IMAGES["churn-serving"]] / 1e6, sizes[IMAGES["churn"]] / 1e6
    p50 = statistics.median(starts[(IMAGES["churn-serving"], "predictor")])
    print(
        f"\nserving image {serving:,.0f} MB = {serving / component:.2f}x the component image  [aim <= {SIZE_AIM_MB} MB]"
    )
    print(f"serving predictor cold start p50 {p50:.2f} s  [aim <= {START_AIM_S:.0f} s]")


if __name__ == "__main__":
    main()
