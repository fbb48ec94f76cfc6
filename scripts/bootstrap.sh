#!/usr/bin/env bash
# Make .venv match uv.lock exactly. Installs uv into .tools/ first when it is not on PATH,
# so a fresh machine needs nothing but python3.11 (with venv) and network to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
export UV_PYTHON_DOWNLOADS=never   # use the machine's Python 3.11; never fetch one
export UV_LINK_MODE="${UV_LINK_MODE:-copy}"

if command -v uv >/dev/null 2>&1; then
  UV=uv
elif [ -x .tools/uv/bin/uv ]; then
  UV=.tools/uv/bin/uv
else
  echo "bootstrap: installing uv ${UV_VERSION} into .tools/uv" >&2
  python3 -m venv .tools/uv
  .tools/uv/bin/python -m pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}"
  UV=.tools/uv/bin/uv
fi

# --compile-bytecode: write every package's .pyc now. An interpreter started with
# PYTHONDONTWRITEBYTECODE=1 (set on this project's CI machines, and common in container
# images) never writes them, so without this each one compiles MLflow, KServe, scikit-learn...
# from source on every import: 12.7 s of CPU instead of 6.5 s to import the serving stack,
# and a test run starts a few hundred interpreters. It costs about a minute once per fresh
# .venv; a later sync takes a few seconds.
"$UV" sync --frozen --python 3.11 --quiet --compile-bytecode
