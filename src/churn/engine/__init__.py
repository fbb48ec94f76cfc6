"""The pandas/Dask choice, made in one place: :func:`engine_for` gives a stage its :class:`Engine`.

The pandas engine runs a stage in one process on files; the Dask engine (:mod:`churn.engine.dask`)
runs it partition by partition on a Dask cluster, on folders of ``part-*.parquet``. Dask loads only
when the Dask engine is chosen: a pandas run never imports it.
"""

from __future__ import annotations

from pathlib import Path

from churn.data.dataset import is_dataset
from churn.engine.base import Engine
from churn.errors import ChurnError

ENGINES = ("pandas", "dask")

__all__ = ["ENGINES", "Engine", "engine_for"]


def engine_for(name: str | None = None, location: str | Path | None = None, *, option: str = "engine") -> Engine:
    """The engine a stage runs on: named, or the one a dataset at ``location`` was written by.

    Args:
        name: ``pandas`` or ``dask``; empty or None: pandas, unless ``location`` decides.
        location: A dataset: a folder of parts (or of a pointer to them) is the Dask engine's,
            whatever ``name`` says; a file leaves the choice to ``name``.
        option: How the user gave the name, for the error (``--engine`` on the CLI).

    Raises:
        ChurnError: ``name`` is not an engine; the message names it.

    """
    if name and name not in ENGINES:
        raise ChurnError(f"{option} must be pandas or dask, got {name!r}")
    if name == "dask" or (location is not None and is_dataset(location)):
        from churn.engine.dask.engine import DaskEngine  # dask loads only here, when the Dask engine is chosen

        return DaskEngine()
    from churn.engine.pandas import PandasEngine

    return PandasEngine()
