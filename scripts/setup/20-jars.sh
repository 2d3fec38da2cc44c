#!/usr/bin/env bash
# Fetch the pinned JVM jars (jvm/pom.xml) of the scale-out engines into .cache/jars/<group>.
# Idempotent and fast when cached: a group is refetched only when jvm/pom.xml changed.
# Installs Java 17 and Maven from Debian when they are missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

need=()
[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ] || command -v java >/dev/null || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
if [ ${#need[@]} -gt 0 ]; then
  echo "20-jars: installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

"${LAKEHOOK_VENV:-$root/.venv}/bin/lakehook" jars fetch
