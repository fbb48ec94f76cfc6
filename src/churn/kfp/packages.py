"""The compiled pipeline packages: where they are, and the component image their tasks run.

``churn pipeline compile`` writes them to ``pipelines/compiled/`` of the checkout; the same
files ship in the installed package (the wheel holds ``pipelines/``), so a retraining task
can submit the training pipeline without importing any pipeline definition.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from churn import __version__

COMPILED_DIR = Path("pipelines/compiled")
#: The registry of the component image unless ``CHURN_IMAGE_REGISTRY`` names another.
DEFAULT_REGISTRY = "ghcr.io/churn-mlops"


def component_image(registry: str | None = None) -> str:
    """The component image of this library version: ``<registry>/churn:<version>``.

    A component compiled by churn-mlops X.Y.Z can only run the churn library X.Y.Z, so the
    code in the YAML and the code in the image never drift apart.

    Args:
        registry: The registry; default ``CHURN_IMAGE_REGISTRY``, else :data:`DEFAULT_REGISTRY`.

    """
    chosen = registry or os.environ.get("CHURN_IMAGE_REGISTRY") or DEFAULT_REGISTRY
    return f"{chosen}/churn:{__version__}"


def packaged_pipeline_text(name: str) -> str:
    """The compiled ``<name>_pipeline.yaml`` shipped in the installed ``pipelines`` package (read, not imported)."""
    return resources.files("pipelines").joinpath("compiled", f"{name}_pipeline.yaml").read_text(encoding="utf-8")


def write_packaged_pipeline(name: str, out_dir: Path, registry: str | None = None) -> Path:
    """Write the packaged compiled pipeline to ``<out_dir>/<name>_pipeline.yaml``, its tasks on :func:`component_image`.

    The shipped YAML names the image of the registry it was compiled for; each task's image
    is set to this library version's image in ``registry`` (default ``CHURN_IMAGE_REGISTRY``),
    as compiling it here would.
    """
    import yaml  # a dependency of kfp; only needed here and for typed parameters

    documents = list(yaml.safe_load_all(packaged_pipeline_text(name)))
    image = component_image(registry)
    for executor in documents[0]["deploymentSpec"]["executors"].values():
        executor["container"]["image"] = image
    path = out_dir / f"{name}_pipeline.yaml"
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    return path
