#!/bin/sh
# Build stages only (never copied into a final image): run a command with the build
# machine's CA bundle when one was passed as the build secret `ca_bundle`
# (`--secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt`). Some networks re-sign
# TLS on the way to the package index; uv keeps its own root store and pip may too, so both
# are pointed at the bundle. A secret is mounted for one RUN step and is in no layer.
if [ -f /run/secrets/ca_bundle ]; then
  export SSL_CERT_FILE=/run/secrets/ca_bundle PIP_CERT=/run/secrets/ca_bundle REQUESTS_CA_BUNDLE=/run/secrets/ca_bundle
fi
exec "$@"
