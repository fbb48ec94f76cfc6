"""Request builders shared by the serving integration tests."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pandas as pd
import requests

from churn.data.schema import COLUMNS_BY_NAME, LABEL
from churn.features.derive import FEATURE_INPUTS
from churn.serving.contract import tensor_type

NAME = "churn-model"


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready raw records (dates as YYYY-MM-DD, missing as None), the label dropped."""
    out = frame.drop(columns=[LABEL]).astype(object).where(frame.drop(columns=[LABEL]).notna(), None)
    for column in ("signup_date", "snapshot_date"):
        out[column] = pd.to_datetime(frame[column]).dt.strftime("%Y-%m-%d")
    return list(out.to_dict(orient="records"))


def column_tensors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One V2 input per field, as a client following the model metadata would send them."""
    tensors = []
    for name in (*FEATURE_INPUTS, "customer_id"):
        values = [r[name] for r in rows]
        datatype = "BYTES" if name == "customer_id" else tensor_type(COLUMNS_BY_NAME[name])
        if datatype == "FP64":
            values = [np.nan if v is None else float(v) for v in values]
        tensors.append({"name": name, "datatype": datatype, "shape": [len(rows)], "data": values})
    return tensors


def triton_inputs(rows: list[dict[str, Any]]) -> list[Any]:
    """The rows as one V2 input per field, binary, as a client following the model metadata sends them."""
    import tritonclient.http as httpclient

    inputs = []
    for tensor in column_tensors(rows):
        item = httpclient.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
        if tensor["datatype"] == "BYTES":  # missing is an empty element (tritonclient would send None as "None")
            values = np.asarray(["" if v is None else v for v in tensor["data"]], dtype=np.object_)
        else:
            values = np.asarray(tensor["data"], dtype=np.float64)
        item.set_data_from_numpy(values, binary_data=True)
        inputs.append(item)
    return inputs


def binary_request(tensors: list[dict[str, Any]], **header: Any) -> tuple[bytes, int]:
    """A V2 REST body with every tensor in the binary data extension; (body, JSON header length).

    BYTES values are UTF-8 text, ``None`` an empty element, ``{"hex": ...}`` those raw bytes;
    numbers are FP64 (``None`` as NaN, the binary way to say "missing").
    """
    spec: dict[str, Any] = {"inputs": [], **header}
    chunks = []
    for tensor in tensors:
        if tensor["datatype"] == "BYTES":
            elements = [_raw(v) for v in tensor["data"]]
            raw = b"".join(struct.pack("<I", len(e)) + e for e in elements)
        else:
            raw = np.asarray([np.nan if v is None else v for v in tensor["data"]], dtype=np.float64).tobytes()
        spec["inputs"].append(
            {
                "name": tensor["name"],
                "datatype": tensor["datatype"],
                "shape": tensor["shape"],
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        chunks.append(raw)
    head = json.dumps(spec).encode()
    return head + b"".join(chunks), len(head)


def _raw(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"])
    return str(value).encode()


def metric(url: str, series: str) -> float:
    """The sum of the series ``name{labels}`` matches on a server's ``/metrics`` (every other label, e.g. the version).

    ``churn_predictions_total{label="churned"}`` adds up that label's series of every model
    version; a bare name adds up all of its series.
    """
    name, _, labels = series.partition("{")
    wanted = set(filter(None, labels.rstrip("}").split(",")))
    found = []
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        head, _, value = line.rpartition(" ")
        line_name, _, line_labels = head.partition("{")
        if line_name == name and wanted <= set(filter(None, line_labels.rstrip("}").split(","))):
            found.append(float(value))
    if not found:
        raise AssertionError(f"{series} not exposed at {url}")
    return sum(found)
