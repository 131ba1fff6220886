#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine or a developer's: installs the real servers
# the tests use (BIND 9, unbound, OpenSSL, ... from Debian, when run as root and missing) and the
# project with its test extra, then runs pytest. Extra arguments go to pytest.
#
#   scripts/test.sh              # everything
#   scripts/test.sh -k rollover  # a subset
#
# Exit status is pytest's, except that "no tests ran" (pytest's 5) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests start for real (no test skips when one is missing: it fails).
# pebble (Let's Encrypt's ACME test server) and postfix drive the end-to-end renewal tests.
APT_PACKAGES=(bind9 bind9-utils bind9-dnsutils unbound openssl pebble postfix pdns-server
  pdns-backend-sqlite3 knot knot-dnsutils nsd groff-base man-db)
need=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # postfix asks questions at install time: no system mail configuration, please
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string localhost" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "test.sh: missing Debian packages: ${need[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
"$PY" -m pip install -q --disable-pip-version-check -e '.[test]'

set +e
"$PY" -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$rc"
