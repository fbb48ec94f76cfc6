"""The transformer's prediction log survives a ``kill -9`` under load as documented.

A real predictor + transformer pair logs to a folder with a 0.5 s flush interval while
four clients send single-record V2 requests, each with its own request id. The transformer
is killed with SIGKILL mid-traffic. Afterwards every object in the log must be a whole,
readable gzipped JSON-lines file, nothing may be logged twice, and every request answered more than
one flush interval (plus the write in flight) before the kill must be in the log. The same
holds for the single-pass server, which logs with the same writer.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from serving_helpers import NAME, records

from churn.config import ServingMode
from churn.predictions.log import read_log_object, read_prediction_log
from churn.serving.local import LocalService, ServiceConfig

FLUSH_SECONDS = 0.5
#: A batch being written when the kill lands is lost too; writing ~100 records takes milliseconds,
#: this bound leaves room for a busy shared machine.
WRITE_SLACK_SECONDS = 0.5


@pytest.mark.parametrize("mode", ["transformer", "single"])
def test_a_transformer_killed_under_load_loses_at_most_the_last_flush_interval_and_no_object_is_corrupt(
    own_service_config: ServiceConfig, served_champion, tmp_path: Path, mode: ServingMode
) -> None:
    log_root = tmp_path / "predictions"
    config = own_service_config
    config.mode = mode  # the single-pass server logs with the same writer
    config.extra_env = {
        "CHURN_SERVING__PREDICTION_LOG_URI": str(log_root),
        "CHURN_SERVING__PREDICTION_LOG_FLUSH_SECONDS": str(FLUSH_SECONDS),
    }
    rows = records(served_champion.rows.head(50))
    answered: dict[str, float] = {}  # request id -> when its 200 arrived (monotonic)
    sent: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def client(thread: int) -> None:
        connection = http.client.HTTPConnection(config.host, config.transformer_http_port, timeout=5)
        index = thread
        while not stop.is_set():
            request_id = f"t{thread}-{uuid.uuid4().hex[:10]}"
            row = dict(rows[index % len(rows)], customer_id=request_id)
            body = {
                "id": request_id,
                "inputs": [{"name": "records", "datatype": "BYTES", "shape": [1], "data": [json.dumps(row)]}],
            }
            with lock:
                sent.add(request_id)
            try:
                connection.request(
                    "POST", f"/v2/models/{NAME}/infer", json.dumps(body), {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    with lock:
                        answered[request_id] = time.monotonic()
            except (OSError, http.client.HTTPException):
                return  # the transformer is gone
            index += 4
        connection.close()

    with LocalService(config).start(timeout=120) as service:
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(3.0)
        killed = time.monotonic()
        os.killpg(service.processes[config.front].pid, signal.SIGKILL)
        service.processes[config.front].wait()
        stop.set()
        for thread in threads:
            thread.join(10)

    objects = sorted(log_root.glob("date=*/*.jsonl.gz"))
    visible = [p for p in objects if not p.name.startswith(".")]
    assert visible, "the transformer logged nothing in 3 s of traffic"
    for path in visible:  # whole objects only: each one opens and holds the declared columns
        assert read_log_object(str(path), path.name).num_rows > 0, path
    logged = read_prediction_log(log_root)
    assert logged["request_id"].is_unique, "a prediction was logged twice"
    assert (logged["request_id"] == logged["customer_id"]).all()
    in_log = set(logged["request_id"])
    assert in_log <= sent, "the log holds requests nobody sent"
    bound = killed - FLUSH_SECONDS - WRITE_SLACK_SECONDS
    old = {rid for rid, at in answered.items() if at < bound}
    missing_old = old - in_log
    lost = set(answered) - in_log
    print(
        f"\n[kill -9] {len(answered)} answered, {len(in_log)} logged in {len(visible)} objects, "
        f"{len(lost)} lost (all answered in the last {killed - min((answered[r] for r in lost), default=killed):.2f} s)"
    )
    assert len(old) > 100, "too little traffic before the kill to tell anything"
    assert not missing_old, f"{len(missing_old)} answers older than one flush interval were lost"
