# Sourced by scripts/run and scripts/lib/docker.sh: defines start_docker_engine, which installs
# Docker and debootstrap (the sandbox image is built from Debian's packages) from Debian's
# packages when missing and starts the engine when it does not answer. It needs root for that;
# it returns non-zero, having said why, when the engine still does not answer.

. scripts/lib/apt.sh

start_docker_engine() {
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  local packages=()
  { command -v dockerd && command -v docker; } >/dev/null 2>&1 || packages+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || packages+=(debootstrap)
  if [ "${#packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "warning: ${packages[*]} not installed and this is not root: run this as root, or apt-get install ${packages[*]}" >&2
      return 1
    fi
    echo "==> installing ${packages[*]}"
    apt_install "${packages[@]}" || return 1
  fi
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    echo "==> starting Docker (systemctl start docker)"
    systemctl start docker || true
  fi
  if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      echo "warning: the Docker engine does not answer and this is not root: start it (systemctl start docker), or add this user to the docker group" >&2
      return 1
    fi
    local dockerd_log="$HOME/.cache/openhands/dockerd.log"
    mkdir -p "$(dirname "$dockerd_log")"
    echo "==> starting dockerd (log: $dockerd_log)"
    # In a session of its own: stopping the script must not stop the engine.
    setsid dockerd >>"$dockerd_log" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
      if docker info >/dev/null 2>&1; then break; fi
      sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
      echo "warning: the Docker engine did not answer within 60 s; see $dockerd_log" >&2
      tail -n 20 "$dockerd_log" >&2 || true
      return 1
    fi
  fi
}
