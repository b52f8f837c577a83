#!/usr/bin/env bash
# Make a fresh machine ready: uv, a Python 3.12 (the Lambda runtime), the project environment and,
# with --sam, the AWS SAM CLI in its own tool environment (it pins boto3 and pydantic).
# Prints nothing on success unless something had to be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$HOME/.local/bin:$PATH"
if ! command -v uv >/dev/null 2>&1; then
  echo "bootstrap: installing uv" >&2
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
fi

find_python() {
  local candidate
  for candidate in "${CALLKIT_PYTHON:-}" python3.12 "$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null | tail -n 1)"; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  # Last resort where the network allows it: a uv-managed CPython.
  uv python install 3.12 >&2 && uv python find 3.12
}

PYTHON312="$(find_python)" || { echo "bootstrap: no Python 3.12 found (set CALLKIT_PYTHON)" >&2; exit 1; }
uv sync --frozen --python "$PYTHON312" --quiet

if [ "${1:-}" = "--sam" ] && ! command -v sam >/dev/null 2>&1; then
  echo "bootstrap: installing aws-sam-cli (own tool environment)" >&2
  uv tool install --quiet --python "$PYTHON312" aws-sam-cli
fi
echo "$PYTHON312" > .venv/.python312
