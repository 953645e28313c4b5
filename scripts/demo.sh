#!/usr/bin/env bash
# README command 1: install dissect902 (into .venv unless a virtual environment is active)
# and analyse a bundled sample capture. Extra arguments go to `dissect902 analyze`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
echo "== installing dissect902 into $("$PY" -c 'import sys; print(sys.prefix)')"
"$PY" -m pip install -q --disable-pip-version-check -e '.[all]'
"$PY" -m dissect.port902 analyze samples/mixed-esxi.pcap "$@"
bindir=$(dirname "$PY")
echo
echo "Afterwards: source $bindir/activate  (then: dissect902 --help), or run $bindir/dissect902 directly."
