"""Request builders shared by the serving integration tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

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
