"""Find and load the model both serving roles use: a KServe model directory or an MLflow ``models:/`` URI.

Predictor and transformer load the same MLflow model directory: the estimator for the
one, the fitted feature pipeline and threshold (``extra_files``) for the other, so the
features served are the features trained on.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from churn.errors import ChurnError
from churn.registry.mlflow_registry import connect_registry, load_churn_model, resolve_version
from churn.registry.model_dir import MODEL_INFO_FILE, load_model_dir
from churn.training.models import ChurnModel

DEFAULT_MODEL_DIR = "/mnt/models"


@dataclass(frozen=True)
class ServedModel:
    """A loaded churn model and the registry coordinates it is served under."""

    model: ChurnModel
    version: str
    source: str

    @property
    def n_features(self) -> int:
        return int(self.model.features.n_features_out_)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags both roles share (KServe's own flags come from ``kserve.model_server.parser``)."""
    parser.add_argument(
        "--model_dir",
        default=None,
        help=f"MLflow model directory as KServe's storage initializer lays it out (default {DEFAULT_MODEL_DIR}).",
    )
    parser.add_argument(
        "--model_uri",
        default=None,
        help="Load from the registry instead, e.g. models:/churn-model@champion (needs --tracking_uri).",
    )
    parser.add_argument("--tracking_uri", default=None, help="MLflow tracking URI for --model_uri.")
    parser.add_argument(
        "--model_version",
        default=None,
        help="Version reported in responses and metrics (resolved from the registry with --model_uri).",
    )
    parser.add_argument("--bind_host", default="0.0.0.0", help="Address to listen on (churn serve uses 127.0.0.1).")


def load_or_exit(args: argparse.Namespace) -> ServedModel:
    """:func:`load_served_model` for an entry point: a model that cannot be loaded is one line and exit 1."""
    try:
        return load_served_model(args)
    except ChurnError as exc:
        sys.exit(f"error: {exc}")


def load_served_model(args: argparse.Namespace) -> ServedModel:
    """Load the model named by ``--model_uri`` or ``--model_dir`` and work out its version."""
    if args.model_uri:
        if args.tracking_uri:
            connect_registry(args.tracking_uri)
        version = args.model_version or resolve_version(args.model_uri)
        return ServedModel(load_churn_model(args.model_uri), version, args.model_uri)
    path = Path(args.model_dir or DEFAULT_MODEL_DIR)
    if not path.is_dir():
        raise ChurnError(f"model directory {path} does not exist (set --model_dir or --model_uri)")
    version = args.model_version or _run_version(path)
    return ServedModel(load_model_dir(path), version, str(path))


def _run_version(path: Path) -> str:
    """Without a registry, name the model by the MLflow run that logged it."""
    mlmodel = path / "MLmodel"
    if mlmodel.is_file():
        for line in mlmodel.read_text().splitlines():
            if line.startswith("run_id:"):
                return f"run-{line.split(':', 1)[1].strip()[:8]}"
    info = path / "extra_files" / MODEL_INFO_FILE
    return f"dir-{json.loads(info.read_text()).get('family', 'model')}" if info.is_file() else "unknown"
