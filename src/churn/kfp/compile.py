"""Compile the pipelines to YAML (the files a user uploads to the KFP UI or API)."""

from __future__ import annotations

from pathlib import Path

from churn.kfp.catalog import pipeline_definition
from churn.kfp.packages import COMPILED_DIR
from churn.storage import atomic_path


def compile_pipeline(name: str, out_dir: Path = COMPILED_DIR) -> Path:
    """Compile one pipeline to ``<out_dir>/<name>_pipeline.yaml`` (the file a user uploads to the KFP UI)."""
    from kfp import compiler  # kfp's compiler is heavy: only when compiling

    path = out_dir / f"{name}_pipeline.yaml"
    with atomic_path(path) as tmp:
        compiler.Compiler().compile(pipeline_definition(name), str(tmp))
    return path
