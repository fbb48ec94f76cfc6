"""``churn serve`` and ``churn predict``: the local predictor and transformer, and requests to them."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Annotated, get_args

import typer

from churn.cli.console import err, out
from churn.config import ServingMode, get_settings
from churn.errors import ChurnError
from churn.jobs.show import print_answers


def serve_command(
    model: Annotated[
        str | None,
        typer.Option(
            help="Model to serve: models:/NAME@ALIAS, models:/NAME/VERSION or a model directory "
            "[default: models:/<model_name>@champion]."
        ),
    ] = None,
    version: Annotated[int | None, typer.Option(help="Serve this registered version instead of @champion.")] = None,
    protocol: Annotated[
        str | None, typer.Option(help="Transformer -> predictor protocol: grpc-v2 or v2 [default: settings].")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="transformer (predictor + transformer, KServe's shape) or single (one server, one pass) "
            "[default: settings]."
        ),
    ] = None,
    shadow_model: Annotated[
        str | None,
        typer.Option(
            help="Also serve this model (models:/NAME/VERSION, an alias or a directory) as a shadow: the "
            "transformer sends it every request off the request path and logs its answers as variant shadow; "
            "callers get only the champion's (transformer mode)."
        ),
    ] = None,
) -> None:
    """Start the model servers on 127.0.0.1, wait until they are ready, serve until Ctrl-C."""
    from churn.serving.local import LocalService, ServiceConfig

    settings = get_settings()
    if version is not None:
        model = f"models:/{settings.mlflow.model_name}/{version}"
    if protocol not in (None, "grpc-v2", "v2"):
        raise ChurnError(f"--protocol must be grpc-v2 or v2, not {protocol!r}")
    if mode not in (None, *get_args(ServingMode)):
        raise ChurnError(f"--mode must be one of {', '.join(get_args(ServingMode))}, not {mode!r}")
    overrides: dict[str, str] = (
        ({"predictor_protocol": protocol} if protocol else {})
        | ({"mode": mode} if mode else {})
        | ({"shadow_model_uri": shadow_model} if shadow_model else {})
    )
    config = ServiceConfig.from_settings(settings, model, **overrides)
    service = LocalService(config)
    with err.status(f"starting {' and '.join(config.roles)} for {config.model_uri}..."):
        service.start(timeout=settings.serving.start_timeout_seconds)
    name = config.model_name
    out.print(f"[bold]serving[/bold] {config.model_uri} as {name!r} (logs in {config.log_dir.resolve()})")
    front = "single pass" if config.mode == "single" else "transformer"
    out.print(f"  {front:<12} REST {config.transformer_url}  gRPC {config.host}:{config.transformer_grpc_port}")
    metrics = f"{config.transformer_url}/metrics"
    if "predictor" in config.roles:
        out.print(f"  predictor    REST {config.predictor_url}  gRPC {config.host}:{config.predictor_grpc_port}")
        metrics += f"  {config.predictor_url}/metrics"
    if "shadow" in config.roles:
        out.print(
            f"  shadow       REST {config.shadow_url}  gRPC {config.host}:{config.shadow_grpc_port}  ({shadow_model})"
        )
    out.print(f"  metrics      {metrics}")
    out.print("  try          churn predict --file <raw export or JSON records>   (Ctrl-C stops)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a plain `kill` stops the servers too
    try:
        while all(p.poll() is None for p in service.processes.values()):
            time.sleep(0.5)
        err.print("a server exited; stopping")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        err.print("stopping")
    finally:
        service.stop()


def predict_command(
    file: Annotated[
        Path | None,
        typer.Option(help="Raw export (.csv/.parquet) or JSON records/JSON lines; stdin when omitted."),
    ] = None,
    url: Annotated[str | None, typer.Option(help="Transformer URL [default: the local `churn serve`].")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Score only the first N records.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answers as JSON lines.")] = False,
) -> None:
    """Score customer records with the running service (V2 REST, JSON-records input) and print the answers."""
    import json

    from churn.serving.client import answer_rows, predict_records, read_first_records, read_records_file

    settings = get_settings()
    records = read_records_file(file, limit) if file else read_first_records(sys.stdin, limit, source="stdin")
    target = url or f"http://{settings.serving.host}:{settings.serving.transformer_http_port}"
    rows = []
    # The service refuses requests over its batch limit: send the records in batches of that size.
    size = settings.serving.max_batch_size
    for start in range(0, len(records), size):
        answer = predict_records(target.rstrip("/"), settings.serving.model_name, records[start : start + size])
        rows += [row | {"model_version": answer.get("model_version")} for row in answer_rows(answer)]
    if as_json:
        for row in rows:
            out.print(json.dumps(row), highlight=False)
    else:
        print_answers(out, rows)
