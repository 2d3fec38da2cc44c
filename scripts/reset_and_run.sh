#!/usr/bin/env bash
# The main job on the embedded default: one laptop, no Docker.
# Bootstraps .venv, wipes the embedded state, starts the ingestion service, feeds it with
# the simulator, loads raw exactly once, builds every batch layer, and (with --validate)
# ends with the validation table.
#
#   scripts/reset_and_run.sh [--validate] [--no-reset] [--reset-only] [--no-datagen]
#                            [--events N] [--seed S]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
validate=0 reset=1 reset_only=0 datagen=1 events="${LAKEHOOK_RUN_EVENTS:-20000}" seed=42
while [ $# -gt 0 ]; do
  case "$1" in
    --validate) validate=1 ;;
    --no-reset) reset=0 ;;
    --reset-only) reset_only=1 ;;
    --no-datagen) datagen=0 ;;
    --events) events="$2"; shift ;;
    --seed) seed="$2"; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

bash "$root/scripts/bootstrap.sh" "clickhouse"
lakehook="$root/.venv/bin/lakehook"
export LAKEHOOK_HOME="${LAKEHOOK_HOME:-$root/.lakehook}"
mkdir -p "$LAKEHOOK_HOME"

# Local development secrets: generated once, kept out of the repository (0600, under home).
secrets="$LAKEHOOK_HOME/../.lakehook-dev-secrets.env"
if [ -z "${LAKEHOOK_SHOPIFY_SECRET:-}${LAKEHOOK_STRIPE_SECRETS:-}${LAKEHOOK_HUBSPOT_CLIENT_SECRET:-}" ]; then
  if [ ! -f "$secrets" ]; then
    umask 077
    {
      echo "LAKEHOOK_SHOPIFY_SECRET=shpss_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
      echo "LAKEHOOK_STRIPE_SECRETS=whsec_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
      echo "LAKEHOOK_HUBSPOT_CLIENT_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    } > "$secrets"
  fi
  set -a; . "$secrets"; set +a
fi

if [ $reset -eq 1 ]; then
  "$lakehook" reset --yes
  mkdir -p "$LAKEHOOK_HOME"
fi
[ $reset_only -eq 1 ] && exit 0

port="$("$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
"$lakehook" serve --host 127.0.0.1 --port "$port" > "$LAKEHOOK_HOME/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "$url/readyz" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$LAKEHOOK_HOME/serve.log" >&2; exit 1; }
  sleep 0.2
done

if [ $datagen -eq 1 ]; then
  "$lakehook" simulate --url "$url" --seed "$seed" --events "$events" --truth "$LAKEHOOK_HOME/truth.json"
fi
"$lakehook" stream --until-idle
"$lakehook" batch --layer all
if [ $validate -eq 1 ]; then
  "$lakehook" validate
fi
