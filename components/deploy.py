"""The deploy step of the training pipeline: roll the new champion out to KServe."""

from kfp import dsl
from kfp.dsl import Artifact, Markdown, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy_model(
    version: str,
    manifest: Output[Artifact],
    rollout: Output[Markdown],
    tracking_uri: str = "",
    model_name: str = "churn-model",
    mode: str = "local",
    namespace: str = "",
    canary_percent: int = -1,
    timeout_seconds: int = 600,
) -> str:
    """Roll ``version`` out (cluster: progressively when the settings say so), or write the manifest it would apply.

    The ``rollout`` Markdown is the per-step table (or what was applied); ``@champion`` moves
    back after a rollback as the gate's MLflow user (``CHURN_MLFLOW__GATE_USERNAME``).
    """
    from churn.config import get_settings
    from churn.stages import deploy

    settings = get_settings()
    result = deploy.deploy(
        version,
        manifest.path,
        tracking_uri=tracking_uri or settings.tracking_uri,
        model_name=model_name,
        mode=mode,
        namespace=namespace,
        canary_percent=None if canary_percent < 0 else canary_percent,
        timeout=timeout_seconds,
        report_path=rollout.path,
        identity=settings.mlflow.gate_identity,
    )
    return str(result["message"])
