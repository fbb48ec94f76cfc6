"""Single-pass serving: contract, feature pipeline, model and postprocessing in one KServe model server.

The transformer path pays two KServe server passes and a hop per request (encode the matrix,
send it to the predictor, decode its answer). In single-pass mode one process does it all:
:class:`ChurnSinglePass` is the transformer with its ``predict`` scoring the model copy it
already holds (the same ``predict_matrix`` the predictor runs, one thread per request and the
server's cores for a large batch, as there) instead of calling a predictor. Everything a
caller sees is the transformer's: the same inputs and outputs, requested outputs,
``churn_reasons``, ``:explain``, metadata, errors, metrics and prediction log. In a cluster
it is an InferenceService with a predictor only (the chart's ``serving.mode: single``);
locally ``churn serve --mode single``.

Run: ``python -m churn.serving.single --model_dir /mnt/models --http_port 8080``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from kserve import InferRequest

from churn.serving.threads import ThreadedPredict
from churn.serving.transformer import ChurnTransformer, run


class ChurnSinglePass(ChurnTransformer):
    """The transformer's contract and answers, with the model scored in this process."""

    calls_predictor: ClassVar[bool] = False

    def load(self) -> bool:
        # It predicts here (the transformer leaves that to the predictor): a large batch on the server's
        # cores, through a copy of the model held at that thread count (see churn.serving.threads).
        self._predict_matrix = ThreadedPredict.from_settings(self.served.model, threads=1)
        return bool(super().load())

    def preprocess(self, payload: InferRequest | dict[str, Any], headers: dict[str, str] | None = None) -> np.ndarray:
        return self.prepare(payload)

    def validate(self, payload: Any) -> Any:
        # KServe's validate probes a dict request's keys; ours is the checked matrix already.
        return payload

    def predict(self, payload: np.ndarray, headers: dict[str, str] | None = None) -> np.ndarray:
        return self._predict_matrix(payload)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m churn.serving.single``."""
    run(ChurnSinglePass, "churn-mlops KServe model server, single pass (raw records -> features -> model).", argv)


if __name__ == "__main__":
    main()
