# Sourced by the scripts after postgres.sh: installs Docker and debootstrap from Debian's
# packages when missing, starts dockerd when it does not answer, and builds the sandbox image
# of the tests once (offline from Debian's packages, about a minute). Sets SANDBOX_TEST_IMAGE.

apt_updated="${apt_updated:-}"
if ! declare -F apt_install >/dev/null; then
  apt_install() {
    if [ -z "$apt_updated" ]; then
      apt-get update -qq
      apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  }
fi

SANDBOX_TEST_IMAGE="${SANDBOX_TEST_IMAGE:-openhands-sandbox:test}"
docker_packages=()
{ command -v dockerd && command -v docker; } >/dev/null 2>&1 || docker_packages+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || docker_packages+=(debootstrap)
if [ "${#docker_packages[@]}" -gt 0 ]; then
  echo "==> installing ${docker_packages[*]}"
  apt_install "${docker_packages[@]}"
fi

if ! docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    echo "==> starting Docker (systemctl start docker)"
    systemctl start docker || true
  fi
fi
if ! docker info >/dev/null 2>&1; then
  dockerd_log="$HOME/.cache/openhands/dockerd.log"
  mkdir -p "$(dirname "$dockerd_log")"
  echo "==> starting dockerd (log: $dockerd_log)"
  # In a session of its own: an interrupted test run must not stop the engine.
  setsid dockerd >>"$dockerd_log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then break; fi
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "error: the Docker engine did not answer within 60 s; see $dockerd_log" >&2
    tail -n 20 "$dockerd_log" >&2 || true
    exit 1
  fi
fi

if ! docker image inspect "$SANDBOX_TEST_IMAGE" >/dev/null 2>&1; then
  echo "==> building the sandbox image $SANDBOX_TEST_IMAGE (debootstrap, about a minute)"
  cargo run --quiet --locked -- sandbox build-image --tag "$SANDBOX_TEST_IMAGE"
fi
export SANDBOX_TEST_IMAGE
