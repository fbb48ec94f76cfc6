"""The KServe predictor: the model matrix in, the churn probability out, on the V2 protocol.

It loads the MLflow model directory (``/mnt/models``) or a ``models:/`` URI and predicts
with each family's fastest correct path (XGBoost ``inplace_predict``, the LightGBM
booster, scikit-learn on the bare array): no DataFrame per request. It is the image of
the chart's ``ServingRuntime`` for ``modelFormat: mlflow``, built from the same lock file
as training, so the MLflow that loads the model is the one that logged it.

Run: ``python -m churn.serving.predictor --model_dir /mnt/models --http_port 8080``.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from churn.serving.contract import check_batch_size, check_request_id, requested_outputs
from churn.serving.loading import ServedModel
from churn.serving.metrics import MODEL_INFO, count_validation_failure, serve_version
from churn.serving.refusal import RequestError
from churn.serving.threads import ThreadedPredict
from churn.telemetry import telemetry_off_by_default

FEATURES_INPUT = "features"
PROBABILITY_OUTPUT = "churn_probability"
#: Response parameter with the model's label threshold (text: V2 gRPC parameters hold no floats); a
#: transformer shadowing this predictor labels its answers with it.
THRESHOLD_PARAMETER = "threshold"
_FLOAT_DATATYPES = ("FP64", "FP32")


class ChurnPredictor(Model):  # type: ignore[misc]
    """Predict churn probabilities from the preprocessed model matrix.

    Accepts one V2 input (``features``, FP64 or FP32, shape ``[n, n_features]``) or V1
    ``{"instances": [[...], ...]}``; answers ``churn_probability`` (FP64, shape ``[n]``).
    """

    #: Behind a transformer, not a front door: it times no requests (the transformer times the whole request).
    front_door: ClassVar[bool] = False

    def __init__(self, name: str, served: ServedModel, *, max_batch_size: int, threads: int = 1) -> None:
        super().__init__(name)
        self.served = served
        self.max_batch_size = max_batch_size
        self._predict_matrix = ThreadedPredict.from_settings(served.model, threads)

    def load(self) -> bool:
        serve_version(self.served.version)
        MODEL_INFO.info(
            {"model_name": self.name, "model_version": self.served.version, "family": self.served.model.family}
        )
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": FEATURES_INPUT, "datatype": "FP64", "shape": [-1, self.served.n_features]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [{"name": PROBABILITY_OUTPUT, "datatype": "FP64", "shape": [-1]}]

    def predict(
        self, payload: InferRequest | dict[str, Any], headers: dict[str, str] | None = None
    ) -> InferResponse | dict[str, Any]:
        try:
            matrix = self._matrix(payload)
            if not isinstance(payload, dict):
                check_request_id(payload.id)
                requested_outputs(payload.request_outputs, [PROBABILITY_OUTPUT])
        except RequestError as exc:
            count_validation_failure(exc.reason)
            raise InvalidInput(exc.message) from None
        probabilities = self._predict_matrix(matrix)
        if isinstance(payload, dict):
            return {
                "predictions": probabilities.tolist(),
                "model_name": self.name,
                "model_version": self.served.version,
            }
        output = InferOutput(PROBABILITY_OUTPUT, [len(probabilities)], "FP64", data=probabilities)
        return InferResponse(
            response_id=payload.id or str(uuid.uuid4()),
            model_name=self.name,
            model_version=self.served.version,
            infer_outputs=[output],
            parameters={THRESHOLD_PARAMETER: repr(self.served.model.threshold)},  # exact: labels must not move
        )

    def _matrix(self, payload: InferRequest | dict[str, Any]) -> np.ndarray:
        width = self.served.n_features
        if isinstance(payload, dict):
            instances = payload.get("instances")
            if not isinstance(instances, list):
                raise RequestError("malformed_request", 'expected {"instances": [[...feature values...], ...]}')
            try:
                matrix = np.asarray(instances, dtype=np.float64)
            except (TypeError, ValueError, OverflowError):
                raise RequestError("wrong_type", f"instances must be rows of {width} numbers") from None
            datatype, shape = "FP64", list(matrix.shape)
        else:
            if len(payload.inputs) != 1:
                names = [i.name for i in payload.inputs]
                raise RequestError("wrong_shape", f"expected one input {FEATURES_INPUT!r}, got {names}")
            tensor = payload.inputs[0]
            if tensor.name != FEATURES_INPUT:
                raise RequestError(
                    "unknown_field", f"unknown input {tensor.name!r}; this model takes {FEATURES_INPUT!r}"
                )
            datatype, shape = tensor.datatype, list(tensor.shape)
            if datatype not in _FLOAT_DATATYPES:
                raise RequestError("wrong_type", f"input {tensor.name!r} must be FP64 or FP32, not {datatype}")
            if len(shape) != 2 or shape[1] != width:
                raise RequestError("wrong_shape", f"input {tensor.name!r} has shape {shape}; expected [n, {width}]")
            try:
                matrix = tensor.as_numpy()
            except (TypeError, ValueError, OverflowError):
                raise RequestError(
                    "wrong_shape", f"input {tensor.name!r}: data do not fill shape {shape} with numbers"
                ) from None
        if matrix.ndim != 2 or matrix.shape[1] != width:
            raise RequestError("wrong_shape", f"features have shape {shape}; expected [n, {width}]")
        check_batch_size(matrix.shape[0], self.max_batch_size)
        if not np.isfinite(matrix).all():
            row = int(np.argwhere(~np.isfinite(matrix))[0][0])
            raise RequestError("not_finite", f"features row {row} holds NaN or infinity; the matrix is imputed")
        return matrix


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m churn.serving.predictor``."""
    telemetry_off_by_default()
    from churn.config import get_settings
    from churn.serving.flags import build_parser
    from churn.serving.loading import load_or_exit
    from churn.serving.server import serve

    parser = build_parser("churn-mlops KServe predictor (V2 protocol, MLflow model).")
    parser.add_argument(
        "--max_batch_size", type=int, default=get_settings().serving.max_batch_size, help="Most rows per request."
    )
    parser.add_argument(
        "--model_threads",
        type=int,
        default=1,
        help="Threads per prediction (1: a single row pays no thread wake-ups; scale with replicas/requests).",
    )
    args = parser.parse_args(argv)
    predictor = ChurnPredictor(
        args.model_name, load_or_exit(args), max_batch_size=args.max_batch_size, threads=args.model_threads
    )
    predictor.load()
    serve(predictor, args)


if __name__ == "__main__":
    main()
