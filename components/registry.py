"""Registry components: log every candidate to MLflow, register the winner, run the promotion gate."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Model, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register_model(
    logistic_regression: Input[Model],
    random_forest: Input[Model],
    xgboost: Input[Model],
    lightgbm: Input[Model],
    winner: Input[Model],
    train: Input[Dataset],
    test: Input[Dataset],
    fingerprint: str,
    kfp_run_id: str,
    tracking_uri: str = "",
    experiment: str = "churn",
    model_name: str = "churn-model",
) -> NamedTuple("Registered", [("version", str), ("parent_run_id", str)]):  # type: ignore[valid-type]
    """One MLflow parent run with a nested run per candidate; the winner becomes a new ``@challenger`` version.

    The winner carries its monitoring reference (profile of the training split) inside its model directory.
    """
    from collections import namedtuple

    from churn.config import get_settings
    from churn.stages import registry, training

    settings = get_settings()
    candidates = {
        "logistic_regression": logistic_regression.path,
        "random_forest": random_forest.path,
        "xgboost": xgboost.path,
        "lightgbm": lightgbm.path,
    }
    uri = tracking_uri or settings.tracking_uri
    result = registry.register(
        candidates,
        training.read_selection(winner.path),
        test.path,
        tracking_uri=uri,
        experiment=experiment,
        model_name=model_name,
        artifact_location=settings.artifact_location_for(uri),
        fingerprint=fingerprint,
        kfp_run_id=kfp_run_id,
        timeout=settings.mlflow.timeout_seconds,
        retries=settings.mlflow.max_retries,
        train_path=train.path,
        psi_bins=settings.monitoring.psi_bins,
    )
    return namedtuple("Registered", ["version", "parent_run_id"])(result["version"], result["parent_run_id"])


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def promote_model(
    version: str,
    parent_run_id: str,
    test: Input[Dataset],
    decision: Output[Markdown],
    tracking_uri: str = "",
    model_name: str = "churn-model",
    margin: float = 0.002,
) -> str:
    """Promotion gate: challenger and champion scored on the same test rows; ``@champion`` moves only if earned."""
    from churn.config import get_settings
    from churn.stages import markdown, registry

    settings = get_settings()
    result = registry.promote(
        version,
        test.path,
        tracking_uri=tracking_uri or settings.tracking_uri,
        model_name=model_name,
        margin=margin,
        parent_run_id=parent_run_id,
        timeout=settings.mlflow.timeout_seconds,
        retries=settings.mlflow.max_retries,
        identity=settings.mlflow.gate_identity,
    )
    markdown.write_text(decision.path, markdown.gate_markdown(result))
    return "promoted" if result["promoted"] else "rejected"
