# Sourced by the test command: OpenHands' own CLI (`openhands` from PyPI) in a Python 3.12
# venv, for the tests that run it against this service (`openhands cloud`, `openhands login`).
# Made once (a few minutes) under the cache directory; sets OPENHANDS_CLI to its program.

CLI_VERSION="1.16.0"
CLI_VENV="${CLI_VENV:-$HOME/.cache/openhands/openhands-cli-$CLI_VERSION}"
if ! "$CLI_VENV/bin/python" -c 'import openhands_cli' >/dev/null 2>&1; then
  python312=""
  for candidate in "$HOME"/.pyenv/versions/3.12*/bin/python3.12 "$(command -v python3.12 || true)"; do
    if [ -x "$candidate" ]; then python312="$candidate"; break; fi
  done
  if [ -z "$python312" ]; then
    echo "error: OpenHands' CLI needs Python 3.12 (pyenv's, or python3.12 on PATH)" >&2
    exit 1
  fi
  echo "==> installing OpenHands' CLI $CLI_VERSION into $CLI_VENV ($python312)"
  rm -rf "$CLI_VENV"
  "$python312" -m venv "$CLI_VENV"
  "$CLI_VENV/bin/pip" install --quiet --disable-pip-version-check "openhands==$CLI_VERSION"
fi
export OPENHANDS_CLI="$CLI_VENV/bin/openhands"
