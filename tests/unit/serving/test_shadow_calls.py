"""The shadow caller's bounds, in process against real sockets: a silent server, a closed port, a full house."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from kserve import InferInput, InferRequest

from churn.errors import ChurnError
from churn.serving.local import free_port
from churn.serving.shadow import SHADOW_IN_FLIGHT, SHADOW_REQUESTS, ShadowPredictor


def _request() -> InferRequest:
    features = InferInput("features", [1, 3], "FP64", data=[0.1, 0.2, 0.3])
    return InferRequest(model_name="churn-model", infer_inputs=[features], request_id="r-1")


def _count(outcome: str) -> float:
    return float(SHADOW_REQUESTS.labels(outcome=outcome)._value.get())


def _shadow(port: int, protocol: str, **bounds: float) -> ShadowPredictor:
    values = {"timeout_seconds": 0.3, "max_in_flight": 8} | bounds
    return ShadowPredictor(
        f"127.0.0.1:{port}",
        protocol=protocol,
        model_name="churn-model",
        default_threshold=0.5,
        timeout_seconds=values["timeout_seconds"],
        max_in_flight=int(values["max_in_flight"]),
    )


async def _silent_server() -> tuple[asyncio.Server, int]:
    """A server that accepts connections and never answers (a hung shadow)."""

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_hung_shadow_times_out_and_the_caller_returns_at_once() -> None:
    async def scenario() -> tuple[float, float]:
        server, port = await _silent_server()
        shadow = _shadow(port, "v2", timeout_seconds=0.3)
        start = time.perf_counter()
        shadow.send(_request(), "r-1", None)
        sent = time.perf_counter() - start
        await shadow.drain(timeout=5)
        server.close()
        return sent, time.perf_counter() - start

    before = _count("timeout")
    sent, total = asyncio.run(scenario())
    assert _count("timeout") == before + 1
    assert sent < 0.05  # send() only starts a task
    assert 0.25 < total < 2.0  # cancelled at the timeout, not the client's own
    assert SHADOW_IN_FLIGHT._value.get() == 0


def test_beyond_the_bound_requests_are_dropped_not_queued() -> None:
    async def scenario() -> int:
        server, port = await _silent_server()
        shadow = _shadow(port, "v2", max_in_flight=2, timeout_seconds=0.3)
        for _ in range(5):
            shadow.send(_request(), "r-1", None)
        in_flight = shadow.in_flight
        await shadow.drain(timeout=5)
        server.close()
        return in_flight

    dropped, timeouts = _count("dropped"), _count("timeout")
    assert asyncio.run(scenario()) == 2
    assert _count("dropped") == dropped + 3
    assert _count("timeout") == timeouts + 2


def test_a_shadow_that_is_down_is_counted_as_an_error_on_both_protocols() -> None:
    async def scenario(protocol: str) -> None:
        shadow = _shadow(free_port(), protocol, timeout_seconds=1.0)
        shadow.send(_request(), "r-1", None)
        await shadow.drain(timeout=5)

    for protocol in ("v2", "grpc-v2"):
        before = _count("error")
        asyncio.run(scenario(protocol))
        assert _count("error") == before + 1, protocol


def test_without_an_event_loop_nothing_is_sent_and_the_drop_is_counted() -> None:
    before = _count("dropped")
    _shadow(free_port(), "v2").send(_request(), "r-1", ["c1"])
    assert _count("dropped") == before + 1


def test_the_single_pass_server_refuses_a_shadow_at_start(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "churn.serving.single", "--model_dir", str(tmp_path)]
    done = subprocess.run([*command, "--shadow_predictor_host", "127.0.0.1:1"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "shadow mode is a transformer-mode feature" in done.stderr


def test_churn_serve_refuses_a_shadow_model_in_single_pass_mode_before_starting_anything(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from churn.cli import app

    args = ["serve", "--mode", "single", "--shadow-model", "models:/churn-model/1"]
    shown = CliRunner().invoke(app, args, env={"COLUMNS": "200", "CHURN_DATA_DIR": str(tmp_path)})
    # The app raises; the `churn` entry point prints a ChurnError's message and exits 1.
    assert isinstance(shown.exception, ChurnError)
    assert "a shadow model needs transformer mode" in str(shown.exception)
    assert not (tmp_path / "serving").exists()  # no server was started, no log folder made
