#!/usr/bin/env bash
# Build the three images with whichever engine works here (scripts/container_env.sh: a docker
# with a daemon, else podman/buildah, installed from Debian's packages when missing); PUSH=1
# also pushes them. Tags follow the package version, as components/_image.py pins it.
#   IMAGES="churn-serving mlflow" scripts/build_images.sh    builds a subset
#   NO_CACHE=1 scripts/build_images.sh                       rebuilds every layer and empties uv's
#                                                            cache mount first (a cold build)
# Where no registry serves the base image, scripts/build_base_image.sh builds a stand-in first.
# Prints each image's build time and size at the end; writes each image's CycloneDX SBOM to
# dist/sbom/<image>-<version>.cdx.json.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/container_env.sh
source scripts/container_env.sh

registry="${CHURN_IMAGE_REGISTRY:-${REGISTRY:-ghcr.io/churn-mlops}}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"
declare -A images=([churn]=images/churn/Dockerfile [churn-serving]=images/serving/Dockerfile [mlflow]=images/mlflow/Dockerfile)
read -r -a selected <<<"${IMAGES:-churn churn-serving mlflow}"

args=()
if [[ "$CONTAINER_ENGINE" == podman ]]; then
  bash scripts/build_base_image.sh
  args+=(--pull=never --layers)
else
  export DOCKER_BUILDKIT=1  # build secrets need BuildKit
fi
# The machine's CA bundle goes in as a build secret (never a layer): on networks that re-sign
# TLS, uv in the build stage needs it to reach the package index. See images/with-build-ca.sh.
for bundle in "${CA_BUNDLE:-}" /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  if [[ -n "$bundle" && -f "$bundle" ]]; then
    args+=(--secret "id=ca_bundle,src=$bundle")
    break
  fi
done

no_cache=()
if [[ "${NO_CACHE:-0}" == "1" ]]; then
  no_cache=(--no-cache)
  # --no-cache leaves cache mounts alone: uv's (shared by the three builds, see the Dockerfiles)
  # is emptied too, so a cold build downloads and unpacks every wheel as a fresh machine does.
  if [[ "$CONTAINER_ENGINE" == podman ]]; then
    rm -rf "${TMPDIR:-/var/tmp}/buildah-cache" "${TMPDIR:-/var/tmp}/buildah-cache-$(id -u)"
  else
    "$CONTAINER_ENGINE" builder prune -f --filter type=exec.cachemount >/dev/null
  fi
fi
report=()
for name in "${selected[@]}"; do
  [[ -n "${images[$name]:-}" ]] || { echo "build_images: unknown image $name (one of ${!images[*]})" >&2; exit 1; }
  tag="$registry/$name:$version"
  echo "build_images: building $tag from ${images[$name]} with $CONTAINER_ENGINE" >&2
  start=$SECONDS
  # Each Dockerfile's `build` stage gets a local tag too, so that its layers stay the cache of the
  # next build instead of lying untagged beside it. An image that a new build takes a tag from is
  # removed (with the untagged layers only it used): rebuilds on one machine (a laptop, a CI host
  # that keeps its store) do not pile up gigabytes; one still in use by a container is kept.
  stage_tag="localhost/churn-build-stage/$name:$version"
  superseded=()
  for t in "$stage_tag" "$tag"; do
    superseded+=("$("$CONTAINER_ENGINE" image inspect --format '{{.Id}}' "$t" 2>/dev/null || true)")
  done
  "$CONTAINER_ENGINE" build "${args[@]}" "${no_cache[@]}" -f "${images[$name]}" -t "$tag" .
  "$CONTAINER_ENGINE" build "${args[@]}" --quiet -f "${images[$name]}" --target build -t "$stage_tag" . >/dev/null
  current=" $("$CONTAINER_ENGINE" image inspect --format '{{.Id}}' "$stage_tag" "$tag" | tr '\n' ' ')"
  for old in "${superseded[@]}"; do
    if [[ -n "$old" && "$current" != *" $old "* ]]; then
      "$CONTAINER_ENGINE" rmi "$old" >/dev/null 2>&1 || echo "build_images: kept $old (still in use)" >&2
    fi
  done
  seconds=$((SECONDS - start))
  size="$("$CONTAINER_ENGINE" image inspect --format '{{.Size}}' "$tag")"
  # The image's CycloneDX SBOM (written at build, see images/write-sbom.sh), beside the image.
  mkdir -p dist/sbom
  holder="$("$CONTAINER_ENGINE" create "$tag")"
  sbom_path=/opt/churn/sbom.cdx.json
  [[ "$name" == mlflow ]] && sbom_path=/opt/mlflow/sbom.cdx.json
  "$CONTAINER_ENGINE" cp "$holder:$sbom_path" "dist/sbom/$name-$version.cdx.json"
  "$CONTAINER_ENGINE" rm "$holder" >/dev/null
  report+=("$(awk -v t="$tag" -v s="$seconds" -v b="$size" 'BEGIN { printf "%-45s %8d s %9.0f MB", t, s, b / 1e6 }')")
  if [[ "${PUSH:-0}" == "1" ]]; then
    "$CONTAINER_ENGINE" push "$tag"
  fi
done
printf '%-45s %10s %12s\n' image "build" size
for line in "${report[@]}"; do echo "$line"; done
