# Sourced by deploy/demo and tests/run: builds the project venv (.venv) and OctoPrint's own venv
# (.venv-octoprint; it pins old Flask/Click/Tornado, the daemon never imports it). Idempotent.
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "farmctl needs Python >= 3.11 (found $("$PY" --version 2>&1))" >&2
    exit 1
fi
if ! "$PY" -m venv --help >/dev/null 2>&1 || ! "$PY" -c 'import ensurepip' >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv python3-dev gcc >/dev/null
fi
stamp() { sha256sum pyproject.toml | cut -c1-16; }
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.stamp 2>/dev/null)" != "$(stamp)" ]; then
    echo "bootstrap: building .venv"
    "$PY" -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[dev]'
    stamp > .venv/.stamp
fi
if [ ! -x .venv-octoprint/bin/octoprint ]; then
    echo "bootstrap: building .venv-octoprint (OctoPrint 1.11 with its Virtual Printer)"
    "$PY" -m venv .venv-octoprint
    .venv-octoprint/bin/pip install -q --upgrade pip
    .venv-octoprint/bin/pip install -q 'octoprint>=1.11,<1.12'
fi
export FARMCTL_OCTOPRINT_BIN="$PWD/.venv-octoprint/bin/octoprint"
