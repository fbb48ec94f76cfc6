#!/usr/bin/env bash
# Install Debian's Prometheus binaries for the alert-rule tests: promtool, prometheus and
# prometheus-pushgateway. Idempotent: returns at once when all three are on PATH. Services
# are never started (the tests start the binaries themselves on 127.0.0.1).
set -euo pipefail

have_all() {
  command -v promtool >/dev/null 2>&1 &&
    command -v prometheus >/dev/null 2>&1 &&
    command -v prometheus-pushgateway >/dev/null 2>&1
}

if have_all; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_prometheus: promtool, prometheus or prometheus-pushgateway is missing and apt-get is not available;" >&2
  echo "install them (Debian/Ubuntu packages 'prometheus' and 'prometheus-pushgateway') and put them on PATH" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install_prometheus: not root and no sudo; cannot apt-get install prometheus prometheus-pushgateway" >&2
    exit 1
  fi
fi

echo "install_prometheus: apt-get install prometheus prometheus-pushgateway" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-pushgateway >/dev/null

if ! have_all; then
  echo "install_prometheus: installed, but promtool, prometheus or prometheus-pushgateway is still not on PATH" >&2
  exit 1
fi
