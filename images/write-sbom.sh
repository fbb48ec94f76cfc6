#!/bin/sh
# Build stages only: write a CycloneDX SBOM of a venv (every installed distribution, with its
# version and licence) to a file, with cyclonedx-bom from the `sbom` group of /src/uv.lock,
# installed into a throwaway venv that never reaches a final image.
#   write-sbom /opt/venv /sbom.cdx.json
set -eu
venv="$1"
out="$2"
cd /src
uv export --frozen --no-hashes --no-emit-project --only-group sbom -o /tmp/sbom-requirements.txt
uv venv --quiet /tmp/sbom-tool
uv pip install --quiet --python /tmp/sbom-tool/bin/python --no-deps -r /tmp/sbom-requirements.txt
/tmp/sbom-tool/bin/cyclonedx-py environment --output-format JSON --output-file "$out" "$venv"
rm -rf /tmp/sbom-tool /tmp/sbom-requirements.txt
