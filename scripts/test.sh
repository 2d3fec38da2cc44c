#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (PyPI extras,
# Debian packages, Maven jars — see scripts/setup/), runs lint and types, then every
# test tier one after another (engines never run together on 2 cores). Each service is
# started by its own pytest fixture.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -- ARGS         only pytest with ARGS (e.g. -- tests/log -x)
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bash scripts/bootstrap.sh "all,dev,splink" || { echo "test.sh: bootstrap failed" >&2; exit 1; }
export PATH="$root/.venv/bin:$PATH"
for step in scripts/setup/*.sh; do
  [ -e "$step" ] || continue
  echo "== setup: $step" >&2
  bash "$step" || { echo "test.sh: setup step $step failed" >&2; exit 1; }
done

reports="$root/.cache/test-reports"
rm -rf "$reports" && mkdir -p "$reports"

if [ "${1:-}" = "--" ]; then
  shift
  exec pytest "$@"
fi

status=0
echo "== ruff" >&2
ruff check src tests benchmarks || status=1
echo "== mypy (strict)" >&2
mypy || status=1

# Tiers, in order. A tier listed here that collects no test is a failure (exit code 5).
tiers=(
  "unit+integration|not (postgres or kafka or spark or flink or trino or s3 or prometheus or airflow or browser)"
)
for extra_tier in scripts/setup/tiers.d/*; do
  [ -e "$extra_tier" ] && while IFS= read -r line; do
    [ -n "$line" ] && [ "${line:0:1}" != "#" ] && tiers+=("$line")
  done < "$extra_tier"
done

for tier in "${tiers[@]}"; do
  name="${tier%%|*}"; expr="${tier#*|}"
  echo "== pytest tier: $name" >&2
  pytest -m "$expr" --junitxml="$reports/${name//[^a-z0-9]/_}.xml" -p no:cacheprovider
  rc=$?
  if [ $rc -eq 5 ]; then
    echo "test.sh: tier '$name' collected no tests: that is a failure" >&2
    status=1
  elif [ $rc -ne 0 ]; then
    status=1
  fi
done

python - "$reports" <<'PY' || status=1
import glob, sys, xml.etree.ElementTree as ET
tests = failures = errors = skipped = 0
for path in glob.glob(f"{sys.argv[1]}/*.xml"):
    for suite in ET.parse(path).getroot().iter("testsuite"):
        tests += int(suite.get("tests", 0)); failures += int(suite.get("failures", 0))
        errors += int(suite.get("errors", 0)); skipped += int(suite.get("skipped", 0))
passed = tests - failures - errors - skipped
print(f"lakehook: {passed} passed, {failures + errors} failed, {skipped} skipped")
# a skipped test is not a passing test here
sys.exit(1 if (failures + errors + skipped) or tests == 0 else 0)
PY
exit $status
