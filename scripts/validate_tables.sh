#!/usr/bin/env bash
# Row counts and checks across the lake's layers (wraps `lakehook validate`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/bootstrap.sh" "" >/dev/null
exec "$root/.venv/bin/lakehook" validate "$@"
