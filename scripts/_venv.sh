# Sourced by scripts/demo.sh and scripts/test.sh: pick a Python to install into.
#
# Inside an active virtual environment (or with PYTHON=... set) that interpreter is used as it
# is. Otherwise a project-local .venv is made from python3, because Debian's and Ubuntu's own
# python3 refuse `pip install` outside one (PEP 668, "externally-managed-environment").
# On a fresh Debian the venv module lives in the python3-venv package: installed with apt-get
# when we are root, otherwise the error says what to install.
set -euo pipefail
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    PY=$VIRTUAL_ENV/bin/python
else
    VENV=${DISSECT902_VENV:-.venv}
    if [ ! -x "$VENV/bin/python" ]; then
        if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
                echo "== installing python3-venv (needed to make $VENV)"
                DEBIAN_FRONTEND=noninteractive apt-get update -qq
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            else
                echo "error: python3 cannot make a virtual environment; install python3-venv (apt-get install python3-venv)" >&2
                exit 2
            fi
        fi
        echo "== making the virtual environment $VENV"
        python3 -m venv "$VENV"
    fi
    PY=$VENV/bin/python
fi
