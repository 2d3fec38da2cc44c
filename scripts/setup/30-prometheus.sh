#!/usr/bin/env bash
# promtool, for tests/observe: `promtool check rules` and `promtool test rules` on
# monitoring/prometheus/alerts.yml. Installs Debian's `prometheus` package when missing and
# keeps its own server stopped (the tests never use it).
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "30-prometheus.sh: promtool is missing; run as root or: sudo apt-get install prometheus" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop prometheus >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null
