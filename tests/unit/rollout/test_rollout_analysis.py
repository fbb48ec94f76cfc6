"""The rollout's verdict from what Prometheus answered, and the weighted router's split (real HTTP servers)."""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections import Counter

import numpy as np
import pytest

from churn.config import RolloutSettings
from churn.rollout.analysis import (
    CHURN_SHARE,
    LATENCY_P95,
    PROBABILITY_PSI,
    SERVER_ERRORS,
    VALIDATION_FAILURES,
    Prometheus,
    VersionWindow,
    analyse_step,
    judge,
    latency_p95_query,
    requests_query,
    verdict_of,
)
from churn.rollout.router import WeightedRouter
from churn.serving.local import free_port

pytestmark = pytest.mark.unit

SETTINGS = RolloutSettings(min_requests=10)
SPREAD = np.array([30.0, 50, 80, 60, 40, 20, 10, 5, 3, 2])


def window(**changes: object) -> VersionWindow:
    values: dict[str, object] = {
        "requests": 200.0,
        "errors": 0.0,
        "latency_p95": 0.02,
        "validation_failures": 1.0,
        "probability_counts": SPREAD * 10,
        "churned": 600.0,
        "scored": 3_000.0,
    }
    return VersionWindow(**(values | changes))  # type: ignore[arg-type]


def test_a_canary_like_the_stable_passes_every_check() -> None:
    checks = judge(window(probability_counts=SPREAD * 3, requests=60.0, validation_failures=0.0), window(), SETTINGS)
    assert [c.name for c in checks] == [SERVER_ERRORS, LATENCY_P95, VALIDATION_FAILURES, PROBABILITY_PSI, CHURN_SHARE]
    assert all(c.passed for c in checks), checks
    assert verdict_of(checks) == ("pass", "every check passed")


@pytest.mark.parametrize(
    ("canary", "failed"),
    [
        (window(errors=10.0), SERVER_ERRORS),  # 5% of requests against 0%
        (window(latency_p95=0.061), LATENCY_P95),  # x3.05
        (window(validation_failures=30.0), VALIDATION_FAILURES),  # 15% refused against 0.5%
        (window(probability_counts=np.array([0.0, 0, 0, 300, 0, 0, 0, 0, 0, 0])), PROBABILITY_PSI),  # one answer
        (window(churned=1_200.0), CHURN_SHARE),  # 40% against 20%
    ],
)
def test_each_check_fails_on_its_own_fault_and_names_it(canary: VersionWindow, failed: str) -> None:
    checks = judge(canary, window(), SETTINGS)
    assert [c.name for c in checks if c.passed is False] == [failed]
    verdict, reason = verdict_of(checks)
    assert verdict == "fail" and reason.startswith(f"{failed} failed: ")


def test_nothing_to_compare_waits_rather_than_passes() -> None:
    checks = judge(window(latency_p95=None), window(), SETTINGS)
    assert verdict_of(checks)[0] == "wait"


def test_the_queries_select_one_version_over_the_window() -> None:
    assert requests_query("3", 12.4) == ('sum(increase(churn_request_duration_seconds_count{model_version="3"}[12s]))')
    assert latency_p95_query('a"b', 300) == (
        "histogram_quantile(0.95, sum by (le) "
        '(rate(churn_request_duration_seconds_bucket{model_version="a\\"b"}[300s])))'
    )


def test_no_prometheus_is_a_wait_that_says_why() -> None:
    port = free_port()  # nobody listens there
    analysis = analyse_step(Prometheus(f"http://127.0.0.1:{port}", timeout=2), "2", "1", 10, SETTINGS)
    assert analysis.verdict == "wait"
    assert f"Prometheus at http://127.0.0.1:{port} cannot be reached" in analysis.reason
    unset = analyse_step(Prometheus(""), "2", "1", 10, SETTINGS)
    assert unset.verdict == "wait" and "no Prometheus configured" in unset.reason


class _Named(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _named_server(name: str) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Named)
    server.name = name  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_the_router_splits_by_weight_and_follows_promote_and_abort() -> None:
    stable, canary = _named_server("stable"), _named_server("canary")
    try:
        urls = [f"http://127.0.0.1:{s.server_address[1]}" for s in (stable, canary)]
        with WeightedRouter(urls[0], "1", urls[1], "2", seed=7) as router:

            def split(n: int) -> Counter[str]:
                return Counter(urllib.request.urlopen(router.url + "/x", timeout=5).read().decode() for _ in range(n))

            assert split(20) == {"stable": 20}  # a canary starts at 0%
            router.set_canary_percent(30)
            assert 40 <= split(200)["canary"] <= 80  # 30% of 200, within a wide margin
            assert router.state().canary_percent == 30
            router.abort()
            assert split(20) == {"stable": 20} and router.state().canary_version is None
            router.set_canary(urls[1], "2")
            router.set_canary_percent(50)
            router.promote()
            assert split(20) == {"canary": 20}
            assert router.state() == type(router.state())("2", None, 0)
    finally:
        for server in (stable, canary):
            server.shutdown()
            server.server_close()
