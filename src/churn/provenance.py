"""Where a result came from: the data's fingerprint, the code's commit, the engine it ran on.

What every training run records with its models (MLflow tags) and every loaded dataset with
its KFP artifact (metadata), so a model can be traced back to its data and code.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of a file's bytes: the data version recorded with every run."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def git_commit() -> str:
    """The commit of the running code: ``CHURN_GIT_COMMIT`` (set in images), else ``git``, else unknown."""
    if commit := os.environ.get("CHURN_GIT_COMMIT"):
        return commit
    try:
        found = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
        return found.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def engine_tags(info: dict[str, Any]) -> dict[str, str]:
    """The engine a model was trained on, and its Dask cluster's size, as MLflow tags."""
    return {"engine": str(info.get("engine", "pandas")), **{str(k): str(v) for k, v in info.get("cluster", {}).items()}}
