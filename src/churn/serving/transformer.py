"""The KServe transformer: raw customer records in, churn probability and label out.

It overrides only ``preprocess`` (check the records against the contract, then run the
fitted feature pipeline that was logged with the model: the same code and the same
fitted numbers as training) and ``postprocess`` (apply the model's stored threshold,
count the predictions). KServe's base class sends the model matrix to the predictor
named by ``--predictor_host`` over ``--predictor_protocol`` (``grpc-v2`` by default
here, ``v2`` for REST).

Run: ``python -m churn.serving.transformer --model_dir /mnt/models --predictor_host
predictor:8081 --predictor_protocol grpc-v2``.
"""

from __future__ import annotations

import contextvars
import inspect
import math
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput
from kserve.utils.inference_client_factory import InferenceClientFactory

from churn.scoring.reasons import SHAP, Explainer, TopReasons, reason_records, reasons_json
from churn.serving.binary import ListedOutput, raw_text_tensor, tensor_elements
from churn.serving.contract import (
    RECORDS_INPUT,
    Batch,
    check_request_id,
    from_records,
    from_records_tensor,
    from_tensors,
    input_metadata,
    requested_outputs,
)
from churn.serving.loading import ServedModel
from churn.serving.metrics import (
    MODEL_INFO,
    PREDICTIONS,
    PROBABILITY,
    answered_by,
    count_validation_failure,
    observe_all,
    serve_version,
)
from churn.serving.predictor import FEATURES_INPUT, PROBABILITY_OUTPUT, THRESHOLD_PARAMETER
from churn.serving.refusal import RequestError
from churn.serving.shadow import ShadowPredictor, answer_threshold
from churn.telemetry import telemetry_off_by_default
from churn.training.models import set_threads

if TYPE_CHECKING:  # imported by main() only when the log is on
    from churn.predictions.logger import PredictionLogger

LABEL_OUTPUT = "churn_label"
ID_OUTPUT = "customer_id"
OUTPUTS = (PROBABILITY_OUTPUT, LABEL_OUTPUT, ID_OUTPUT)
#: Each customer's top reasons (JSON per row); returned only when a request asks for it, or on ``:explain``.
REASONS_OUTPUT = "churn_reasons"
#: Every output a request may ask for by name.
REQUESTABLE_OUTPUTS = (*OUTPUTS, REASONS_OUTPUT)
#: Longest pause between two attempts to reconnect to a predictor that went away. gRPC's
#: default backoff grows by 1.6x per failed attempt up to 120 s, so a predictor back after a
#: 17 s outage still got 503s for 9 s more, and after a minute's outage for up to 2 minutes.
PREDICTOR_RECONNECT_BACKOFF_MS = 1_000


@dataclass(frozen=True)
class _Pending:
    """What postprocess needs to know about the request preprocess saw (same asyncio task)."""

    v1: bool
    request_id: str
    customer_ids: list[str] | None
    #: The outputs the request asked for (None: all of them).
    outputs: list[str] | None = None
    #: The answer goes out as gRPC raw contents (every output as raw bytes).
    grpc: bool = False


_PENDING: contextvars.ContextVar[_Pending] = contextvars.ContextVar("churn_pending_request")


@dataclass(frozen=True)
class _Explain:
    """What the reasons of a request are computed from; ``wanted`` once it asked for them."""

    matrix: np.ndarray
    columns: dict[str, np.ndarray]
    wanted: bool


#: Set by every V2/V1 preprocess (two references, no copy); read by postprocess only when reasons are wanted.
_EXPLAIN: contextvars.ContextVar[_Explain | None] = contextvars.ContextVar("churn_explain", default=None)


def decode(payload: InferRequest | dict[str, Any], *, max_rows: int) -> Batch:
    """Turn any accepted request shape (V2 tensors, V2 ``records``, V1 ``instances``) into a checked batch."""
    if isinstance(payload, dict):
        if set(payload) != {"instances"}:
            raise RequestError("malformed_request", 'a V1 request is {"instances": [{...record...}, ...]}')
        return from_records(payload["instances"], max_rows=max_rows)
    if not isinstance(payload, InferRequest):
        raise RequestError("malformed_request", "expected a V2 inference request or a V1 instances object")
    check_request_id(payload.id)
    names = [tensor.name for tensor in payload.inputs]
    if len(set(names)) != len(names):
        raise RequestError("malformed_request", f"input names repeat: {names}")
    if names == [RECORDS_INPUT]:
        tensor = payload.inputs[0]
        if tensor.datatype != "BYTES":
            raise RequestError("wrong_type", f"input {RECORDS_INPUT!r} must be BYTES (JSON text)")
        elements = _values(tensor, payload.from_grpc)
        flat = elements if isinstance(elements, list) else elements.reshape(-1).tolist()
        return from_records_tensor(flat, max_rows=max_rows)
    return from_tensors(
        {t.name: (t.datatype, t.shape, _values(t, payload.from_grpc)) for t in payload.inputs}, max_rows=max_rows
    )


def _values(tensor: InferInput, from_grpc: bool) -> np.ndarray | list[Any]:
    """JSON ``data`` as the flat list it was sent (the contract holds it to the records' rules), else an array."""
    if not from_grpc and tensor._raw_data is None and isinstance(tensor.data, list):
        flat = _flatten(tensor.data)
        if len(flat) != math.prod(tensor.shape):
            raise RequestError(
                "wrong_shape", f"input {tensor.name!r} has shape {list(tensor.shape)} but holds {len(flat)} values"
            )
        return flat
    if tensor.datatype == "BYTES" and tensor._raw_data is not None:  # binary REST or gRPC raw contents
        return tensor_elements(tensor)
    try:
        return np.asarray(tensor.as_numpy())
    except (TypeError, ValueError, OverflowError) as exc:
        raise RequestError(
            "wrong_type",
            f"input {tensor.name!r}: data do not match datatype {tensor.datatype} and shape {tensor.shape} ({exc})",
        ) from None


def _flatten(data: list[Any]) -> list[Any]:
    """JSON tensor data may nest by row ([[v], [v]] for shape [n, 1]); the protocol allows both."""
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item) if isinstance(item, list) else [item])
    return flat


class ChurnTransformer(Model):  # type: ignore[misc]
    """Preprocess raw records with the model's own feature pipeline; label the predictor's probabilities."""

    _grpc_client_stub: InferenceGRPCClient | None  # set by KServe's Model.__init__
    #: Whether ``predict`` is KServe's call to the predictor named by ``--predictor_host``.
    calls_predictor: ClassVar[bool] = True
    #: Callers reach this server: it times each whole request under the version that answered it.
    front_door: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        served: ServedModel,
        *,
        max_batch_size: int,
        prediction_log: PredictionLogger | None = None,
        reasons_method: str = SHAP,
        shadow: ShadowPredictor | None = None,
    ) -> None:
        super().__init__(name)
        self.served = served
        self.max_batch_size = max_batch_size
        self.prediction_log = prediction_log
        self.shadow = shadow
        self.reasons_method = reasons_method
        self._explainer: Explainer | None = None

    def load(self) -> bool:
        model = self.served.model
        serve_version(self.served.version)
        MODEL_INFO.info({"model_name": self.name, "model_version": self.served.version, "family": model.family})
        # Reasons of a request's few rows on one thread: the estimator keeps its training n_jobs
        # otherwise, and OpenMP's second thread made one row's TreeSHAP 10-50x slower on busy cores.
        set_threads(model.family, model.estimator, 1)
        # Built once (a forest's path tables); used only by requests that ask for reasons.
        self._explainer = Explainer(model, self.reasons_method)
        self.ready = True
        return self.ready

    @property
    def _grpc_client(self) -> InferenceGRPCClient:
        """KServe's gRPC client to the predictor (the same shared one), retrying a lost connection every second."""
        config = self.predictor_config
        if self._grpc_client_stub is None and config is not None and config.predictor_host:
            self._grpc_client_stub = InferenceClientFactory().get_grpc_client(
                url=config.predictor_host,
                use_ssl=config.use_ssl,
                timeout=config.timeout,
                retries=config.retries,
                channel_args=[  # KServe's own options, plus the reconnect bound
                    ("grpc.max_send_message_length", -1),
                    ("grpc.max_receive_message_length", -1),
                    ("grpc.max_reconnect_backoff_ms", PREDICTOR_RECONNECT_BACKOFF_MS),
                ],
            )
        return super()._grpc_client

    @property
    def _grpc(self) -> bool:
        config = self.predictor_config
        return config is not None and config.protocol == "grpc-v2"

    def get_input_types(self) -> list[dict[str, Any]]:
        return input_metadata()

    def get_output_types(self) -> list[dict[str, Any]]:
        return [
            {"name": PROBABILITY_OUTPUT, "datatype": "FP64", "shape": [-1]},
            {"name": LABEL_OUTPUT, "datatype": "INT32", "shape": [-1]},
            {"name": ID_OUTPUT, "datatype": "BYTES", "shape": [-1]},
            {"name": REASONS_OUTPUT, "datatype": "BYTES", "shape": [-1]},
        ]

    def preprocess(self, payload: InferRequest | dict[str, Any], headers: dict[str, str] | None = None) -> InferRequest:
        matrix = self.prepare(payload)
        request_id = _PENDING.get().request_id
        if self._grpc:
            features = InferInput(FEATURES_INPUT, list(matrix.shape), "FP64")
            features.set_data_from_numpy(matrix, binary_data=True)  # raw bytes in the protobuf
        else:
            # JSON numbers on REST (KServe's predictor rejects its own client's binary body); tolist() is C-fast.
            features = InferInput(FEATURES_INPUT, list(matrix.shape), "FP64", data=matrix.ravel().tolist())
        request = InferRequest(model_name=self.name, infer_inputs=[features], request_id=request_id)
        if self.shadow is not None:  # a task on the event loop; this request never waits for it
            self.shadow.send(request, request_id, _PENDING.get().customer_ids)
        return request

    def prepare(self, payload: InferRequest | dict[str, Any]) -> np.ndarray:
        """Check a request against the contract and run the feature pipeline: the model matrix.

        What postprocess and the reasons need about the request is kept in this request's context.

        Raises:
            InvalidInput: The request breaks the contract (a 400 naming the field; counted by reason).

        """
        try:
            batch = decode(payload, max_rows=self.max_batch_size)
            outputs = None
            if not isinstance(payload, dict):
                outputs = requested_outputs(payload.request_outputs, REQUESTABLE_OUTPUTS)
                if outputs and ID_OUTPUT in outputs and batch.customer_ids is None:
                    raise RequestError("unknown_output", f"output {ID_OUTPUT!r} needs the {ID_OUTPUT!r} input")
        except RequestError as exc:
            count_validation_failure(exc.reason)
            raise InvalidInput(exc.message) from None
        matrix = np.ascontiguousarray(self.served.model.features.transform(batch.columns))
        _EXPLAIN.set(_Explain(matrix, batch.columns, wanted=bool(outputs and REASONS_OUTPUT in outputs)))
        request_id = (None if isinstance(payload, dict) else payload.id) or str(uuid.uuid4())
        grpc = not isinstance(payload, dict) and bool(payload.from_grpc)
        _PENDING.set(_Pending(isinstance(payload, dict), request_id, batch.customer_ids, outputs, grpc))
        return matrix

    def postprocess(
        self, result: InferResponse | np.ndarray | dict[str, Any], headers: dict[str, str] | None = None
    ) -> InferResponse | dict[str, Any]:
        pending = _PENDING.get()
        probabilities = _probabilities(result)
        # The predictor's answer names its version (a canary predictor may sit behind this transformer).
        version = answered_by(result.model_version if isinstance(result, InferResponse) else None)
        threshold = self.served.model.threshold
        if isinstance(result, InferResponse) and version != self.served.version:
            threshold = answer_threshold(result, threshold)  # a canary's answers at its own threshold
        labels = (probabilities >= threshold).astype(np.int32)
        churned = int(labels.sum())
        PREDICTIONS.labels(version, "churned").inc(churned)
        PREDICTIONS.labels(version, "retained").inc(len(labels) - churned)
        observe_all(PROBABILITY.labels(version), probabilities)
        if self.prediction_log is not None:  # a queue append; a background thread writes
            # A predictor of another version behind this transformer is a canary (KServe Standard's spec.canary[]).
            other = version != self.served.version
            self.prediction_log.record(
                pending.request_id,
                pending.customer_ids,
                probabilities,
                labels,
                variant="canary" if other else None,
                model_version=version if other else None,
            )
        if pending.v1:
            predictions: list[dict[str, Any]] = [
                {PROBABILITY_OUTPUT: float(p), LABEL_OUTPUT: int(label)}
                for p, label in zip(probabilities, labels, strict=True)
            ]
            if pending.customer_ids is not None:
                for prediction, customer in zip(predictions, pending.customer_ids, strict=True):
                    prediction[ID_OUTPUT] = customer
            self._add_reasons_v1(predictions)
            return {"predictions": predictions, "model_name": self.name, "model_version": self.served.version}
        outputs = [  # ListedOutput: the same JSON as KServe writes, listed by numpy at once
            ListedOutput(PROBABILITY_OUTPUT, [len(probabilities)], "FP64", data=probabilities),
            ListedOutput(LABEL_OUTPUT, [len(labels)], "INT32", data=labels),
        ]
        if pending.customer_ids is not None:
            ids = pending.customer_ids
            if pending.grpc:
                # KServe serialises a BYTES array element by element; gRPC takes the raw form as it is.
                ids_output = InferOutput(ID_OUTPUT, [len(ids)], "BYTES")
                ids_output._raw_data = raw_text_tensor(ids)
            else:
                encoded = np.asarray([c.encode() for c in ids], dtype=np.object_)
                ids_output = ListedOutput(ID_OUTPUT, [len(ids)], "BYTES", data=encoded)
            outputs.append(ids_output)
        if pending.outputs is not None:
            if REASONS_OUTPUT in pending.outputs:
                outputs.append(self._reasons_output())
            by_name = {output.name: output for output in outputs}
            outputs = [by_name[name] for name in pending.outputs]
        return InferResponse(
            response_id=pending.request_id,
            model_name=self.name,
            model_version=self.served.version,
            infer_outputs=outputs,
            parameters={THRESHOLD_PARAMETER: f"{threshold:.6f}"},  # V2 gRPC parameters hold no floats
        )

    # --- reasons: only requests that ask for them (output churn_reasons, or :explain) reach these

    async def explain(
        self, payload: InferRequest | np.ndarray, headers: dict[str, str] | None = None
    ) -> InferResponse | np.ndarray:
        """KServe's ``/v1/models/<name>:explain``: the prediction, and postprocess adds each row's reasons."""
        state = _EXPLAIN.get()
        if state is not None:
            _EXPLAIN.set(_Explain(state.matrix, state.columns, wanted=True))
        response = self.predict(payload, headers)  # the predictor's answer (awaited), or the model's own
        if inspect.isawaitable(response):
            response = await response
        return response

    def _top_reasons(self) -> tuple[TopReasons, dict[str, np.ndarray]]:
        state = _EXPLAIN.get()
        if state is None or self._explainer is None:
            raise RuntimeError("reasons asked for outside a request (preprocess did not run)")
        return self._explainer.top(state.matrix), state.columns

    def _reasons_output(self) -> InferOutput:
        """The ``churn_reasons`` output: per row, a JSON list of its top reasons."""
        top, columns = self._top_reasons()
        data = np.asarray(reasons_json(top, columns), dtype=np.object_)
        return InferOutput(REASONS_OUTPUT, [len(data)], "BYTES", data=data)

    def _add_reasons_v1(self, predictions: list[dict[str, Any]]) -> None:
        """On ``:explain`` (a V1 request), each prediction gets its reasons as JSON objects."""
        state = _EXPLAIN.get()
        if state is None or not state.wanted:
            return
        top, columns = self._top_reasons()
        for prediction, reasons in zip(predictions, reason_records(top, columns), strict=True):
            prediction[REASONS_OUTPUT] = reasons


def _probabilities(result: InferResponse | np.ndarray | dict[str, Any]) -> np.ndarray:
    if isinstance(result, np.ndarray):  # scored in this process (single-pass mode)
        return result
    if not isinstance(result, InferResponse):  # KServe returns a dict only for V1 predictors and graphs
        raise TypeError("the predictor did not answer on the V2 protocol (set --predictor_protocol grpc-v2 or v2)")
    output = result.get_output_by_name(PROBABILITY_OUTPUT) or result.outputs[0]
    return np.asarray(output.as_numpy(), dtype=np.float64).reshape(-1)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m churn.serving.transformer``."""
    run(ChurnTransformer, "churn-mlops KServe transformer (raw records -> features -> predictor).", argv)


def run(model_class: type[ChurnTransformer], description: str, argv: list[str] | None = None) -> None:
    """Parse the flags, load the model, start the prediction log and serve a ``model_class`` until stopped."""
    telemetry_off_by_default()
    from churn.config import get_settings
    from churn.serving.flags import add_shadow_arguments, build_parser
    from churn.serving.loading import load_or_exit
    from churn.serving.server import serve

    parser = build_parser(description)
    settings = get_settings()
    serving = settings.serving
    parser.add_argument("--max_batch_size", type=int, default=serving.max_batch_size, help="Most records per request.")
    parser.add_argument(
        "--prediction_log",
        default=serving.prediction_log_uri or "",
        help="Folder or s3:// prefix where every answer is recorded (empty: no log) "
        "[default: CHURN_SERVING__PREDICTION_LOG_URI].",
    )
    parser.add_argument(
        "--prediction_log_flush_seconds",
        type=float,
        default=serving.prediction_log_flush_seconds,
        help="Longest time an answer waits in memory before it is written (what a kill -9 can lose).",
    )
    add_shadow_arguments(parser, serving)
    # A predictor that hangs (not one that died: that is a 503 at once) holds a request this long,
    # not KServe's 600 s.
    parser.set_defaults(predictor_protocol="grpc-v2", predictor_request_timeout_seconds=30)
    args = parser.parse_args(argv)
    if model_class.calls_predictor and args.predictor_protocol not in ("grpc-v2", "v2"):
        parser.error(
            f"--predictor_protocol must be grpc-v2 or v2 (the predictor speaks V2), not {args.predictor_protocol}"
        )
    if not model_class.calls_predictor and args.predictor_host:
        parser.error("--predictor_host: this server scores the model itself (single-pass mode); it calls no predictor")
    if not model_class.calls_predictor and args.shadow_predictor_host:
        parser.error(
            "--shadow_predictor_host: shadow mode is a transformer-mode feature (the single-pass server "
            "calls no predictor); serve in transformer mode to run a shadow"
        )
    if args.prediction_log_flush_seconds <= 0:
        parser.error("--prediction_log_flush_seconds must be > 0")
    served = load_or_exit(args)
    prediction_log = None
    if args.prediction_log:
        from churn.errors import ChurnError
        from churn.predictions.logger import PredictionLogger
        from churn.predictions.logger import check_writer as check_log_writer

        try:
            check_log_writer(args.prediction_log)
        except ChurnError as error:
            parser.error(f"--prediction_log {args.prediction_log}: {error}")
        prediction_log = PredictionLogger(
            args.prediction_log,
            model_name=args.model_name,
            model_version=served.version,
            flush_seconds=args.prediction_log_flush_seconds,
            max_queue=serving.prediction_log_max_queue,
            variant=args.variant,
        ).start()
    shadow = None
    if args.shadow_predictor_host:
        if args.shadow_timeout_seconds <= 0 or args.shadow_max_in_flight < 1:
            parser.error("--shadow_timeout_seconds must be > 0 and --shadow_max_in_flight >= 1")
        shadow = ShadowPredictor(
            args.shadow_predictor_host,
            protocol=args.predictor_protocol,
            model_name=args.shadow_model_name or args.model_name,
            timeout_seconds=args.shadow_timeout_seconds,
            max_in_flight=args.shadow_max_in_flight,
            default_threshold=served.model.threshold,
            prediction_log=prediction_log,
        )
    model = model_class(
        args.model_name,
        served,
        max_batch_size=args.max_batch_size,
        prediction_log=prediction_log,
        reasons_method=settings.scoring.reasons_method,  # the batch scorer's, so both give the same reasons
        shadow=shadow,
    )
    model.load()
    serve(model, args)


if __name__ == "__main__":
    main()
