# Sourced by the other scripts/lib files: apt_install installs Debian packages quietly,
# updating the package lists once per run.

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
