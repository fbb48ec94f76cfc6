"""What the parts of one model server share: the model versions it holds and its request limits.

One :class:`ServerState` is built by :func:`churn.serving.server.serve` before the server
starts and handed to the ASGI middleware, the data-plane patches and the gRPC servicer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServerState:
    """The served models' versions and the request-body deadline of one server.

    Attributes:
        model_versions: Version of each model this server holds, by model name.
        body_read_timeout_seconds: Longest wait for the rest of a request body: a client that
            sends less than its Content-Length gets a 408 instead of holding the connection
            until it gives up (``CHURN_SERVING__BODY_READ_TIMEOUT_SECONDS``).
        front_door: Whether callers reach this server (transformer, single pass): it then times
            each inference request in ``churn_request_duration_seconds``; a predictor behind a
            transformer does not, so a request is timed once.

    """

    model_versions: Mapping[str, str] = field(default_factory=dict)
    body_read_timeout_seconds: float = 30.0
    front_door: bool = True
