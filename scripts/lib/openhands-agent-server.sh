# Sourced by the test command: OpenHands' released agent server (`openhands-agent-server` from
# PyPI) in its own Python 3.12 venv, the reference the agent-server surface is compared with.
# Made once (a few minutes) under the cache directory; sets OPENHANDS_AGENT_SERVER to its
# program.

AGENT_SERVER_VERSION="1.58.2"
AGENT_SERVER_VENV="${AGENT_SERVER_VENV:-$HOME/.cache/openhands/openhands-agent-server-$AGENT_SERVER_VERSION}"
if ! "$AGENT_SERVER_VENV/bin/python" -c 'import openhands.agent_server' >/dev/null 2>&1; then
  python312=""
  for candidate in "$HOME"/.pyenv/versions/3.12*/bin/python3.12 "$(command -v python3.12 || true)"; do
    if [ -x "$candidate" ]; then python312="$candidate"; break; fi
  done
  if [ -z "$python312" ]; then
    echo "error: OpenHands' agent server needs Python 3.12 (pyenv's, or python3.12 on PATH)" >&2
    exit 1
  fi
  echo "==> installing OpenHands' agent server $AGENT_SERVER_VERSION into $AGENT_SERVER_VENV ($python312)"
  rm -rf "$AGENT_SERVER_VENV"
  "$python312" -m venv "$AGENT_SERVER_VENV"
  "$AGENT_SERVER_VENV/bin/pip" install --quiet --disable-pip-version-check "openhands-agent-server==$AGENT_SERVER_VERSION"
fi
export OPENHANDS_AGENT_SERVER="$AGENT_SERVER_VENV/bin/agent-server"
