"""The REST server KServe builds, with our changes: which middlewares a request passes through."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("timing_lines", [False, True])
def test_kserves_timing_middleware_runs_only_when_its_log_lines_are_kept(
    monkeypatch: pytest.MonkeyPatch, timing_lines: bool
) -> None:
    """Its only product is two kserve.trace lines per request, silenced unless --log_requests."""
    import fastapi
    import kserve.model_server
    from kserve.errors import InvalidInput
    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import RESTServer
    from timing_asgi import TimingMiddleware

    from churn.serving.errors import rest_server_class

    app = fastapi.FastAPI()
    monkeypatch.setattr(kserve.model_server, "app", app)  # KServe builds on its module's app: a fresh one here
    models = ModelRepository()  # what KServe's ModelServer hands its REST server, without its logging setup
    server = rest_server_class(RESTServer, timing_lines=timing_lines)(
        "kserve.model_server:app", DataPlane(model_registry=models), ModelRepositoryExtension(models), 0
    )
    server.create_application()
    middlewares = [m.cls for m in app.user_middleware]
    assert (TimingMiddleware in middlewares) is timing_lines
    assert app.exception_handlers[InvalidInput].__name__ == "client_error"  # ours, after KServe's
