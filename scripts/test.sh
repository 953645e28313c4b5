#!/usr/bin/env bash
# Install everything the test suite needs (Python test extras; tshark via apt-get when it is
# missing and we are root) and run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! command -v tshark >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing tshark (the tests use it as a reference implementation)"
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark >/dev/null
    else
        echo "!! tshark is missing and cannot be installed here (not root / no apt-get):" >&2
        echo "!! tshark oracle tests will be skipped (set DISSECT902_REQUIRE_TSHARK=1 to make that an error)" >&2
    fi
fi

echo "== installing dissect902 with its test extras"
"$PY" -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== running the tests"
exec "$PY" -m pytest "$@"
