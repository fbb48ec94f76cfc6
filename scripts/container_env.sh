# Sourced by the image scripts: pick a container engine that actually works and export
# CONTAINER_ENGINE (docker or podman). A `docker` client with no daemon behind it is not
# picked (these machines have one). Podman and buildah are installed from Debian's packages
# when nothing works, with the settings scripts/install_podman.sh writes for this machine.
# CONTAINER_ENGINE set by the caller wins.
_churn_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_churn_use_podman() {
  bash "$_churn_root/scripts/install_podman.sh"
  export CONTAINERS_CONF="${CONTAINERS_CONF:-$_churn_root/.tools/containers/containers.conf}"
  export CONTAINERS_STORAGE_CONF="${CONTAINERS_STORAGE_CONF:-$_churn_root/.tools/containers/storage.conf}"
  CONTAINER_ENGINE=podman
}
if [[ -n "${CONTAINER_ENGINE:-}" ]]; then
  [[ "$(basename "$CONTAINER_ENGINE")" == podman ]] && _churn_use_podman
elif command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
  CONTAINER_ENGINE=docker
else
  _churn_use_podman
fi
export CONTAINER_ENGINE
