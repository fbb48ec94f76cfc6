#!/usr/bin/env bash
# Make the Dockerfiles' base image, python:3.11-slim-bookworm, available to podman/buildah.
#
# Where a registry answers, the real image is pulled and nothing else happens. Where none does
# (these build machines reach PyPI and Debian's archive only), a stand-in is built from Debian's
# archive with debootstrap and tagged with the same name, so the Dockerfiles build unchanged.
# How the stand-in differs from the real image (docs/images.md says the same):
#   - Python is Debian's python3.11 package (3.11.2 plus Debian's patches, /usr/bin/python3.11),
#     not the python.org build of the latest 3.11.x in /usr/local; python, python3 and pip are
#     symlinked into /usr/local/bin so the Dockerfiles' commands resolve the same way.
#   - pip is Debian's python3-pip (reads the system CA store); the PEP 668 "externally managed"
#     marker is removed so `pip install` works as in the real image.
#   - It also holds python3-venv and Debian's python3-setuptools/wheel (pulled in by python3-pip);
#     ca-certificates, netbase and tzdata are in the real image too. Docs, man pages and locales
#     are excluded as in Debian's slim images. About 150 MB against the real image's ~130 MB.
# Idempotent: returns at once when the image exists. BASE_IMAGE overrides the name.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/container_env.sh
source scripts/container_env.sh

base="${BASE_IMAGE:-python:3.11-slim-bookworm}"
if "$CONTAINER_ENGINE" image exists "$base" 2>/dev/null || "$CONTAINER_ENGINE" image inspect "$base" >/dev/null 2>&1; then
  exit 0
fi
if timeout 60 "$CONTAINER_ENGINE" pull "docker.io/library/$base" >/dev/null 2>&1; then
  "$CONTAINER_ENGINE" tag "docker.io/library/$base" "$base"
  echo "build_base_image: pulled docker.io/library/$base" >&2
  exit 0
fi
if [[ "$CONTAINER_ENGINE" != podman ]]; then
  echo "build_base_image: cannot pull $base and the stand-in is built with podman/buildah only" >&2
  exit 1
fi

# The Debian mirror apt already uses on this machine (deb822 or one-line sources).
mirror="${DEBIAN_MIRROR:-$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
  | head -1 | awk '{print $2}' || true)}"
mirror="${mirror:-http://deb.debian.org/debian}"
echo "build_base_image: no registry answers; building a stand-in for $base from $mirror (about 2 min)" >&2

rootfs="$(mktemp -d)"
container=""
cleanup() {
  [[ -n "$container" ]] && buildah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$rootfs"
}
trap cleanup EXIT
debootstrap --variant=minbase --include=ca-certificates,python3.11,python3-pip,python3-venv,netbase,tzdata \
  bookworm "$rootfs" "$mirror" >/dev/null
for name in python python3; do ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/$name"; done
ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
rm -f "$rootfs"/usr/lib/python3.11/EXTERNALLY-MANAGED
# As Debian's slim images (the real base's base) do: no docs, man pages or locales, now or
# from later apt-get installs; no downloaded packages, apt lists or caches left behind.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
DPKG
# Debian's image recipe (debuerreotype) also keeps apt from leaving its package caches in
# image layers (docker-clean); the real base has the same file.
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda,locale}/*
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/cache/debconf/*-old

container="$(buildah from scratch)"
mnt="$(buildah mount "$container")"
cp -a "$rootfs"/. "$mnt"/
buildah umount "$container" >/dev/null
buildah config --env LANG=C.UTF-8 --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --cmd python3 --label org.churn-mlops.base-stand-in="debootstrap bookworm minbase + Debian python3.11" "$container"
buildah commit --quiet "$container" "localhost/$base" >/dev/null
"$CONTAINER_ENGINE" tag "localhost/$base" "docker.io/library/$base"
echo "build_base_image: built the stand-in localhost/$base (also tagged docker.io/library/$base)" >&2
