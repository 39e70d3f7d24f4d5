# Sourced by the scripts after postgres.sh: installs and starts the Docker engine when missing
# (scripts/lib/docker-engine.sh), and builds the sandbox image of the tests once (offline from
# Debian's packages, about a minute). Sets SANDBOX_TEST_IMAGE.

. scripts/lib/docker-engine.sh
if ! start_docker_engine; then
  echo "error: the tests need the Docker engine" >&2
  exit 1
fi

SANDBOX_TEST_IMAGE="${SANDBOX_TEST_IMAGE:-openhands-sandbox:test}"
if ! docker image inspect "$SANDBOX_TEST_IMAGE" >/dev/null 2>&1; then
  echo "==> building the sandbox image $SANDBOX_TEST_IMAGE (debootstrap, about a minute)"
  cargo run --quiet --locked -- sandbox build-image --tag "$SANDBOX_TEST_IMAGE"
fi
export SANDBOX_TEST_IMAGE
