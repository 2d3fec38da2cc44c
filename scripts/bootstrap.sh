#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv .venv with lakehook and the given extras.
# Idempotent: reinstalls only when pyproject.toml or the extras changed.
#   scripts/bootstrap.sh            core (embedded mode)
#   scripts/bootstrap.sh all,dev    everything the test suite needs
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
extras="${1:-}"
venv="${LAKEHOOK_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv" >&2
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
fi
# one stamp per extras set: installs are additive, so each set is checked on its own
stamp="$venv/.lakehook-installed-${extras:-core}"
want="$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  spec="$root"
  [ -n "$extras" ] && spec="$root[$extras]"
  echo "bootstrap: installing lakehook${extras:+[$extras]} into $venv" >&2
  "$venv/bin/pip" install --quiet -e "$spec"
  echo "$want" > "$stamp"
fi
