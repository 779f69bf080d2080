# Sourced by scripts/*: make sure .venv exists and holds what pyproject.toml asks for.
# Reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Interlock needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
stamp=.venv/.interlock-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installing Interlock and its dependencies into .venv ..." >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  echo "$want" > "$stamp"
fi
