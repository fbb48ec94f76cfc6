#!/usr/bin/env bash
# Build the three images (docker or podman, whichever is installed); PUSH=1 also pushes them.
# Tags follow the package version, as components/_image.py pins it.
set -euo pipefail
cd "$(dirname "$0")/.."
engine="${CONTAINER_ENGINE:-$(command -v docker || command -v podman || true)}"
if [[ -z "$engine" ]]; then
  echo "error: neither docker nor podman is installed; images cannot be built on this machine" >&2
  exit 1
fi
registry="${CHURN_IMAGE_REGISTRY:-${REGISTRY:-ghcr.io/churn-mlops}}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"
declare -A images=([churn]=images/churn/Dockerfile [churn-serving]=images/serving/Dockerfile [mlflow]=images/mlflow/Dockerfile)
# churn first: the serving image is built on top of it.
for name in churn churn-serving mlflow; do
  tag="$registry/$name:$version"
  echo "building $tag from ${images[$name]}"
  "$engine" build -f "${images[$name]}" --build-arg "BASE_IMAGE=$registry/churn:$version" -t "$tag" .
  if [[ "${PUSH:-0}" == "1" ]]; then
    "$engine" push "$tag"
  fi
done
