#!/usr/bin/env bash
# PostgreSQL binaries for the `postgres` test tier (the catalog suite on a real server).
# The test fixture (tests/services/postgres.py) starts its own throw-away server; this only
# makes sure initdb/pg_ctl exist, installing Debian's `postgresql` package when missing.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
  exit 0
fi
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "10-postgres.sh: PostgreSQL is missing; run as root or: sudo apt-get install postgresql" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
# Debian's package starts a cluster of its own; the tests never use it.
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters --no-header 2>/dev/null | while read -r version name _; do
    pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
  done
fi
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
