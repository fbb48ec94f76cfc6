"""The container image every component runs in, pinned to the library version.

A component compiled by churn-mlops X.Y.Z can only run the churn library X.Y.Z, so the
code in the YAML and the code in the image never drift apart. The registry is
``ghcr.io/churn-mlops`` unless ``CHURN_IMAGE_REGISTRY`` names another when compiling
(``make images`` pushes there with the same variable; the chart's ``imageRegistry``).
The rule is :func:`churn.kfp.packages.component_image`, which a retraining run applies too.
"""

from churn.kfp.packages import component_image

IMAGE = component_image()
