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

"$UV" sync --frozen --python 3.11 --quiet
