"""Which pipelines exist and what they take: the only module of churn that imports ``pipelines/``."""

from __future__ import annotations

from typing import Any

from churn.errors import ChurnError

PIPELINES = ("training", "monitoring", "data", "scoring")
#: Tasks per pipeline, for progress reporting (monitoring: one more when it triggers retraining).
TASK_COUNTS = {"training": 11, "monitoring": 4, "data": 3, "scoring": 4}
#: Pipelines whose tasks import little (pandas, pyarrow, pandera: about 1.2 s each cold): a local run
#: of one does not start a warm task server for them (:mod:`churn.kfp.warm`), it uses one already running.
LIGHT_PIPELINES = frozenset({"data"})


def pipeline_definition(name: str) -> Any:
    """The KFP pipeline function of pipeline ``name`` (see :data:`PIPELINES`).

    Raises:
        ChurnError: No pipeline has that name.

    """
    # Imported on demand: each pipeline module imports kfp and its components.
    if name == "training":
        from pipelines.training_pipeline import training_pipeline

        return training_pipeline
    if name == "monitoring":
        from pipelines.monitoring_pipeline import monitoring_pipeline

        return monitoring_pipeline
    if name == "data":
        from pipelines.data_pipeline import data_pipeline

        return data_pipeline
    if name == "scoring":
        from pipelines.scoring_pipeline import scoring_pipeline

        return scoring_pipeline
    raise ChurnError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")


def pipeline_inputs(name: str) -> set[str]:
    """The parameter names of pipeline ``name``."""
    return set(pipeline_definition(name).component_spec.inputs or {})
