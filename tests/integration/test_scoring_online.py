"""Batch scoring and the online service give the same answers; reasons online only when asked.

``churn_service`` runs the champion's predictor and transformer as real KServe servers; the
batch path scores the same 1,000 raw rows from the same registered model directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from serving_helpers import NAME

from churn.serving.client import read_records_file
from churn.serving.local import LocalService

ServedChampion = Any  # conftest.ServedChampion (tests are not a package)

pytestmark = pytest.mark.integration
ALL_OUTPUTS = ["churn_probability", "churn_label", "customer_id", "churn_reasons"]


def _infer(service: LocalService, records: list[dict[str, Any]], outputs: list[str] | None) -> dict[str, Any]:
    elements = [json.dumps(r) for r in records]
    body: dict[str, Any] = {
        "inputs": [{"name": "records", "datatype": "BYTES", "shape": [len(elements)], "data": elements}]
    }
    if outputs is not None:
        body["outputs"] = [{"name": name} for name in outputs]
    response = requests.post(f"{service.config.transformer_url}/v2/models/{NAME}/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return {o["name"]: o["data"] for o in response.json()["outputs"]}


def test_batch_scores_and_reasons_equal_the_online_ones_for_1000_rows(
    served_champion: ServedChampion, churn_service: LocalService, tmp_path: Path
) -> None:
    from churn.scoring.batch import fetch_model, score_source
    from churn.scoring.table import read_table

    model_dir, version = fetch_model("models:/churn-model@champion", served_champion.tracking_uri)
    summary = score_source(
        str(served_champion.raw_file),
        str(tmp_path / "scored"),
        model_dir=model_dir,
        model_name=NAME,
        model_version=version,
    )
    table = read_table(str(tmp_path / "scored"))
    assert summary.rows == len(table) == 1_000
    online = _infer(churn_service, read_records_file(served_champion.raw_file), ALL_OUTPUTS)
    assert online["customer_id"] == table["customer_id"].tolist()
    np.testing.assert_array_equal(np.asarray(online["churn_probability"]), table["churn_probability"].to_numpy())
    np.testing.assert_array_equal(np.asarray(online["churn_label"]), table["churn_label"].to_numpy())
    reasons = [json.loads(r) for r in online["churn_reasons"]]
    for i in (1, 2, 3):
        assert [r[i - 1]["attribute"] for r in reasons] == table[f"reason_{i}"].astype(str).tolist()
        assert [r[i - 1]["value"] for r in reasons] == table[f"reason_{i}_value"].tolist()
        np.testing.assert_allclose(
            [r[i - 1]["contribution"] for r in reasons], table[f"reason_{i}_contribution"], rtol=0, atol=1e-6
        )
    assert {r[0]["unit"] for r in reasons} == {"log-odds"}
    assert set(table["model_version"]) == {version}


def test_reasons_are_returned_only_when_asked(served_champion: ServedChampion, churn_service: LocalService) -> None:
    records = read_records_file(served_champion.raw_file)[:3]
    plain = _infer(churn_service, records, None)
    assert list(plain) == ["churn_probability", "churn_label", "customer_id"]
    only = _infer(churn_service, records, ["churn_reasons"])
    assert list(only) == ["churn_reasons"]
    first = json.loads(only["churn_reasons"][0])
    assert len(first) == 3
    assert first[0]["text"] == (
        f"{first[0]['attribute']} = {first[0]['value']} → {first[0]['contribution']:+.2f} log-odds "
        f"({'raises' if first[0]['contribution'] > 0 else 'lowers'} risk)"
    )
    assert abs(first[0]["contribution"]) >= abs(first[1]["contribution"]) >= abs(first[2]["contribution"])
    meta = requests.get(f"{churn_service.config.transformer_url}/v2/models/{NAME}", timeout=5).json()
    assert {"name": "churn_reasons", "datatype": "BYTES", "shape": [-1]} in meta["outputs"]


def test_the_explain_endpoint_answers_predictions_with_reasons(
    served_champion: ServedChampion, churn_service: LocalService
) -> None:
    records = read_records_file(served_champion.raw_file)[:2]
    url = f"{churn_service.config.transformer_url}/v1/models/{NAME}:explain"
    response = requests.post(url, json={"instances": records}, timeout=30)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    online = _infer(churn_service, records, ALL_OUTPUTS)
    assert [p["churn_probability"] for p in predictions] == online["churn_probability"]
    assert [p["churn_reasons"] for p in predictions] == [json.loads(r) for r in online["churn_reasons"]]
    # A predict right after an explain on the same connection carries no reasons.
    plain = requests.post(
        f"{churn_service.config.transformer_url}/v1/models/{NAME}:predict", json={"instances": records}, timeout=30
    )
    assert "churn_reasons" not in plain.json()["predictions"][0]
    bad = requests.post(url, json={"instances": [{"customer_id": "C1"}]}, timeout=30)
    assert bad.status_code == 400 and "missing" in bad.text


def test_reasons_over_grpc_equal_those_over_rest(served_champion: ServedChampion, churn_service: LocalService) -> None:
    import subprocess
    import sys

    records = read_records_file(served_champion.raw_file)[:3]
    config = churn_service.config
    spec = {
        "url": f"{config.host}:{config.transformer_grpc_port}",
        "model": NAME,
        "inputs": [{"name": "records", "datatype": "BYTES", "shape": [3], "data": [json.dumps(r) for r in records]}],
        "outputs": ["churn_probability", "churn_reasons"],
    }
    client = Path(__file__).parent / "clients" / "triton_grpc.py"
    done = subprocess.run(
        [sys.executable, str(client)], input=json.dumps(spec), capture_output=True, text=True, timeout=120, check=True
    )
    grpc = json.loads(done.stdout)["outputs"]
    rest = _infer(churn_service, records, ["churn_probability", "churn_reasons"])
    assert list(grpc) == ["churn_probability", "churn_reasons"]
    assert [json.loads(r) for r in grpc["churn_reasons"]] == [json.loads(r) for r in rest["churn_reasons"]]
