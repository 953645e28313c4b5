#!/usr/bin/env bash
# README command 2: install everything the test suite needs and run every test.
#  * Debian packages listed in scripts/debian-packages.txt (tshark, the third-party clients the
#    tests run against the lab's daemon, ...) via apt-get when they are missing and we are root;
#  * dissect902 with its test extras, into .venv unless a virtual environment is active (PEP 668);
#  * then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

missing=()
while read -r pkg; do
    pkg=${pkg%%#*}; pkg=${pkg//[[:space:]]/}
    [ -z "$pkg" ] && continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < scripts/debian-packages.txt
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing Debian packages: ${missing[*]}"
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "!! missing Debian packages (not root / no apt-get): ${missing[*]}" >&2
        echo "!! tests that need them will be skipped (CI sets DISSECT902_REQUIRE_TOOLS=1 to fail instead)" >&2
    fi
fi

echo "== installing dissect902 with its test extras"
"$PY" -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== running the tests"
exec "$PY" -m pytest "$@"
