#!/usr/bin/env bash
# Install Debian's podman and buildah (and what they need here: runc, fuse-overlayfs, uidmap,
# debootstrap for the base-image stand-in) when missing, and write the engine settings this
# kind of machine needs into .tools/containers/. Idempotent.
#
# Why each setting (each was an error first, see docs/images.md):
#   runtime runc        crun refuses hosts with cgroups in hybrid mode
#   cgroupfs            no systemd here to manage cgroups
#   default_ulimits     podman's default nofile/nproc exceed the host's hard limits ("setrlimit ... not permitted")
# The settings live in the clone, not /etc: point podman at them with
#   export CONTAINERS_CONF=$PWD/.tools/containers/containers.conf
# (scripts/container_env.sh does that and picks the engine).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(podman buildah runc fuse-overlayfs uidmap debootstrap)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_podman: missing ${missing[*]} and apt-get is not available; install podman and buildah yourself" >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install_podman: not root and no sudo; cannot install ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  echo "install_podman: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Another process of the same run may be installing at the same moment: wait for its dpkg lock.
  $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
fi

conf=.tools/containers
mkdir -p "$conf"
nofile="$(ulimit -Hn)"
[[ "$nofile" == unlimited ]] && nofile=1048576
nproc="$(ulimit -Hu)"
[[ "$nproc" == unlimited || "$nproc" -gt 32768 ]] && nproc=32768
cat >"$conf/containers.conf.new" <<CONF
# Written by scripts/install_podman.sh for this machine; see that script for why.
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
mv "$conf/containers.conf.new" "$conf/containers.conf"
cat >"$conf/storage.conf.new" <<CONF
# Written by scripts/install_podman.sh: native overlay in the machine's default store, so
# image layers are cached between runs on the same machine.
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
CONF
mv "$conf/storage.conf.new" "$conf/storage.conf"
