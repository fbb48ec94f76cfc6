"""A weighted HTTP router in front of two local front doors: the laptop's stand-in for Knative/Gateway traffic.

In a cluster the traffic split of a rollout is KServe's (Knative's ``canaryTrafficPercent``,
or a Gateway's weights in Standard mode: :mod:`churn.rollout.kserve`). On a laptop, and in
the end-to-end test and benchmark, :class:`WeightedRouter` plays that part and nothing
else: it listens on one port and passes each request, as it came, to the stable or the
canary front door (``churn serve``'s transformer or single-pass server), choosing at random
with the canary's current weight. It implements
:class:`~churn.rollout.decisions.TrafficSplit`, so the controller moves its weights as it
would move an InferenceService's; every method is thread-safe.

It forwards any HTTP request (V2 and V1 REST, metadata, health), buffered; gRPC is not
routed.
"""

from __future__ import annotations

import http.client
import random
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

from churn.rollout.decisions import TrafficState

#: Headers that belong to one connection, not to the request (RFC 9110 7.6.1): not passed on.
_HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host")
)


class WeightedRouter:
    """Send each request to the stable or the canary front door, the canary with ``canary_percent`` percent.

    Use as a context manager (or :meth:`start` / :meth:`stop`); :attr:`url` is where callers send.
    """

    def __init__(
        self,
        stable_url: str,
        stable_version: str,
        canary_url: str | None = None,
        canary_version: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = 30.0,
        seed: int | None = None,
    ) -> None:
        """Route to ``stable_url`` (serving ``stable_version``) and, once weighted, to ``canary_url``.

        Args:
            stable_url: The stable front door, e.g. ``http://127.0.0.1:8080``.
            stable_version: The model version it serves.
            canary_url: The canary's front door (None: no canary yet).
            canary_version: The model version the canary serves.
            host: Address to listen on.
            port: Port to listen on (0: a free one; see :attr:`url`).
            timeout: Seconds to wait for a front door's answer (then 504).
            seed: Seed of the weighted choice (None: unpredictable).

        """
        if (canary_url is None) != (canary_version is None):
            raise ValueError("a canary needs both its URL and its version")
        self._lock = threading.Lock()
        self._stable = (stable_url.rstrip("/"), stable_version)
        self._canary = (canary_url.rstrip("/"), canary_version) if canary_url and canary_version else None
        self._percent = 0
        self._random = random.Random(seed)
        self.timeout = timeout
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where callers send their requests."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- TrafficSplit

    def state(self) -> TrafficState:
        """Who serves what now."""
        with self._lock:
            return TrafficState(self._stable[1], self._canary[1] if self._canary else None, self._percent)

    def set_canary_percent(self, percent: int) -> None:
        """Send ``percent`` of the requests to the canary (0..100)."""
        if not 0 <= percent <= 100:
            raise ValueError(f"canary percent must be within 0..100, not {percent}")
        with self._lock:
            if self._canary is None:
                raise ValueError("there is no canary to send traffic to")
            self._percent = percent

    def promote(self) -> None:
        """The canary becomes the stable version and takes all the requests; the canary entry goes."""
        with self._lock:
            if self._canary is None:
                raise ValueError("there is no canary to promote")
            self._stable, self._canary, self._percent = self._canary, None, 0

    def abort(self) -> None:
        """All the requests go back to the stable version; the canary entry goes."""
        with self._lock:
            self._canary, self._percent = None, 0

    def set_canary(self, url: str, version: str) -> None:
        """Put a new canary (at 0%) beside the stable version, as a deploy step adds one to an InferenceService."""
        with self._lock:
            self._canary, self._percent = (url.rstrip("/"), version), 0

    # --- serving

    def choose(self) -> str:
        """The front door the next request goes to (the weighted draw)."""
        with self._lock:
            if self._canary is not None and self._random.random() * 100 < self._percent:
                return self._canary[0]
            return self._stable[0]

    def start(self) -> Self:
        """Listen in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="weighted-router", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _handler(router: WeightedRouter) -> type[BaseHTTPRequestHandler]:
    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive with clients (tritonclient reuses its connections)

        def log_message(self, format: str, *args: object) -> None:
            """No access log line per request."""

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            target = urllib.parse.urlsplit(router.choose())
            headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
            connection = http.client.HTTPConnection(target.hostname or "", target.port, timeout=router.timeout)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
            except TimeoutError:
                self._reply(504, b'{"error": "the front door did not answer in time"}')
                return
            except OSError as exc:
                self._reply(503, f'{{"error": "the front door cannot be reached ({exc})"}}'.encode())
                return
            finally:
                connection.close()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward  # noqa: N815 (the base class's names)

    return Forward
