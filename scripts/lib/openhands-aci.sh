# Sourced by the test command: a Python 3.12 venv with OpenHands' own editor (`openhands-aci`
# from PyPI), against which the agent's str_replace_editor is compared. Made once (about a
# minute) under the cache directory; sets OPENHANDS_ACI_PYTHON.

ACI_VERSION="0.3.3"
ACI_VENV="${ACI_VENV:-$HOME/.cache/openhands/openhands-aci-$ACI_VERSION}"
if ! "$ACI_VENV/bin/python" -c 'import openhands_aci' >/dev/null 2>&1; then
  python312=""
  for candidate in "$HOME"/.pyenv/versions/3.12*/bin/python3.12 "$(command -v python3.12 || true)"; do
    if [ -x "$candidate" ]; then python312="$candidate"; break; fi
  done
  if [ -z "$python312" ]; then
    echo "error: the editor's comparison needs Python 3.12 (pyenv's, or python3.12 on PATH)" >&2
    exit 1
  fi
  echo "==> installing openhands-aci $ACI_VERSION into $ACI_VENV ($python312)"
  rm -rf "$ACI_VENV"
  "$python312" -m venv "$ACI_VENV"
  "$ACI_VENV/bin/pip" install --quiet --disable-pip-version-check "openhands-aci==$ACI_VERSION"
fi
export OPENHANDS_ACI_PYTHON="$ACI_VENV/bin/python"
