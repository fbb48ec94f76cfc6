"""The deploy step of the training pipeline: roll the new champion out to KServe."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy_model(
    version: str,
    manifest: Output[Artifact],
    tracking_uri: str = "",
    model_name: str = "churn-model",
    mode: str = "local",
    namespace: str = "",
    canary_percent: int = -1,
    timeout_seconds: int = 600,
) -> str:
    """Create or patch the InferenceService to ``version`` (cluster), or write the manifest it would apply (local)."""
    from churn.config import get_settings
    from churn.stages import deploy

    result = deploy.deploy(
        version,
        manifest.path,
        tracking_uri=tracking_uri or get_settings().tracking_uri,
        model_name=model_name,
        mode=mode,
        namespace=namespace,
        canary_percent=None if canary_percent < 0 else canary_percent,
        timeout=timeout_seconds,
    )
    return str(result["message"])
