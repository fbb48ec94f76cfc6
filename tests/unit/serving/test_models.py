"""The two KServe model classes in-process: the transformer's features are the training features.

The skew test reads a raw export with the training pipeline's reader and compares the
model matrix the offline path builds with the one the transformer builds from the same
1,000 rows sent as a V2 request: they must be identical, bit for bit.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kserve import InferInput, InferRequest, InferResponse

from churn.data import generate_customers
from churn.data.files import write_raw
from churn.data.schema import LABEL
from churn.serving.contract import RECORDS_INPUT
from churn.serving.loading import ServedModel
from churn.serving.predictor import ChurnPredictor
from churn.serving.transformer import ChurnTransformer
from churn.training import ChurnModel, split_frame, train_family
from churn.validation.reader import read_raw_file

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def model() -> ChurnModel:
    parts = split_frame(generate_customers(4_000, "2026-01-05", seed=8).frame, seed=2)
    params = {"n_estimators": 60, "max_depth": 3, "early_stopping_rounds": 10}
    return train_family("xgboost", parts["train"], parts["validation"], params)


@pytest.fixture(scope="module")
def raw_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("raw") / "customers_20260301.csv"
    write_raw([generate_customers(1_000, "2026-03-01", seed=77).frame], path)
    return path


def _records_request(path: Path) -> InferRequest:
    """The 1,000 rows as a V2 request, built from the file's text as a client would."""
    frame = pd.read_csv(path).drop(columns=[LABEL])
    rows = json.loads(frame.to_json(orient="records"))
    item = InferInput(RECORDS_INPUT, [len(rows)], "BYTES", data=[json.dumps(r) for r in rows])
    return InferRequest(model_name="churn-model", infer_inputs=[item], request_id="skew")


def _matrix(request: InferRequest) -> np.ndarray:
    return np.asarray(request.inputs[0].as_numpy())


def test_transformer_features_equal_offline_features_for_1000_rows(model: ChurnModel, raw_file: Path) -> None:
    parsed = read_raw_file(raw_file)  # the training pipeline's reader
    assert parsed.frame is not None
    offline = model.features.transform(parsed.frame)
    transformer = ChurnTransformer("churn-model", ServedModel(model, "7", "test"), max_batch_size=5_000)
    sent = transformer.preprocess(_records_request(raw_file))
    served = _matrix(sent)
    assert served.shape == offline.shape == (1_000, model.features.n_features_out_)
    np.testing.assert_array_equal(served, offline)


def test_the_transformer_explains_on_one_thread(model: ChurnModel) -> None:
    """In its own process the transformer's model keeps its training threads unless load() sets one."""
    import copy

    own = copy.deepcopy(model)  # the transformer's process loads its own copy
    own.estimator.set_params(n_jobs=2)
    own.estimator.get_booster().set_param({"nthread": 2})
    ChurnTransformer("churn-model", ServedModel(own, "7", "test"), max_batch_size=10).load()
    assert own.estimator.get_params()["n_jobs"] == 1
    assert json.loads(own.estimator.get_booster().save_config())["learner"]["generic_param"]["nthread"] == "1"


def test_predictor_and_transformer_round_trip_equals_predict_proba(model: ChurnModel, raw_file: Path) -> None:
    served_model = ServedModel(model, "7", "test")
    transformer = ChurnTransformer("churn-model", served_model, max_batch_size=5_000)
    predictor = ChurnPredictor("churn-model", served_model, max_batch_size=5_000)
    transformer.load()
    predictor.load()

    async def through_both() -> Any:
        request = transformer.preprocess(_records_request(raw_file))
        response = predictor.predict(request)
        assert isinstance(response, InferResponse)
        return transformer.postprocess(response)

    answer = asyncio.run(through_both())
    frame = read_raw_file(raw_file).frame
    expected = model.predict_proba(frame)
    np.testing.assert_allclose(answer.get_output_by_name("churn_probability").as_numpy(), expected, rtol=1e-12)
    labels = answer.get_output_by_name("churn_label").as_numpy()
    np.testing.assert_array_equal(labels, (expected >= model.threshold).astype(np.int32))
    assert answer.model_version == "7" and answer.id == "skew"


def test_v1_answers_with_one_prediction_per_instance(model: ChurnModel, raw_file: Path) -> None:
    served_model = ServedModel(model, "7", "test")
    transformer = ChurnTransformer("churn-model", served_model, max_batch_size=10)
    predictor = ChurnPredictor("churn-model", served_model, max_batch_size=10)
    rows = json.loads(pd.read_csv(raw_file).drop(columns=[LABEL]).head(3).to_json(orient="records"))

    async def call() -> Any:
        response = predictor.predict(transformer.preprocess({"instances": rows}))
        return transformer.postprocess(response)

    answer = asyncio.run(call())
    assert len(answer["predictions"]) == 3 and answer["model_version"] == "7"
    assert set(answer["predictions"][0]) == {"churn_probability", "churn_label", "customer_id"}
