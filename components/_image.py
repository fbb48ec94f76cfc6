"""The container image every component runs in, pinned to the library version.

A component compiled by churn-mlops X.Y.Z can only run the churn library X.Y.Z, so the
code in the YAML and the code in the image never drift apart.
"""

from churn import __version__

REGISTRY = "ghcr.io/churn-mlops"
IMAGE = f"{REGISTRY}/churn:{__version__}"
