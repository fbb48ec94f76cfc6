"""The container image every component runs in, pinned to the library version.

A component compiled by churn-mlops X.Y.Z can only run the churn library X.Y.Z, so the
code in the YAML and the code in the image never drift apart. The registry is
``ghcr.io/churn-mlops`` unless ``CHURN_IMAGE_REGISTRY`` names another when compiling
(``make images`` pushes there with the same variable; the chart's ``imageRegistry``).
"""

import os

from churn import __version__

REGISTRY = os.environ.get("CHURN_IMAGE_REGISTRY") or "ghcr.io/churn-mlops"
IMAGE = f"{REGISTRY}/churn:{__version__}"
