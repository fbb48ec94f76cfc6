"""The ``churn`` command line: one module per sub-app, each command a thin call into the library.

``churn = "churn.cli:main"`` (pyproject's ``[project.scripts]``) and ``python -m churn`` run :func:`main`.
"""

from churn.cli.main import app, main

__all__ = ["app", "main"]
