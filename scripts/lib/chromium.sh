# Sourced by the scripts: installs Chromium and its WebDriver server (chromedriver) from
# Debian's packages when missing, for the dashboard's browser tests. Sets CHROMIUM and
# CHROMEDRIVER.

. scripts/lib/apt.sh

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
if [ ! -x "$CHROMIUM" ] || [ ! -x "$CHROMEDRIVER" ]; then
  echo "==> installing chromium and chromium-driver"
  apt_install chromium chromium-driver
fi
if [ ! -x "$CHROMIUM" ] || [ ! -x "$CHROMEDRIVER" ]; then
  echo "error: $CHROMIUM or $CHROMEDRIVER is still missing after installing chromium and chromium-driver" >&2
  exit 1
fi
export CHROMIUM CHROMEDRIVER
