# Sourced from the repository root by deploy/demo and tests/run: builds the project venv (.venv) and
# OctoPrint's own venv (.venv-octoprint; it pins old Flask/Click/Tornado, the daemon never imports it).
# Idempotent, and silent when both are sound. It repairs what a broken or interrupted earlier run left:
# a symlink or a file where a venv belongs, a venv whose python no longer runs (its base Python was
# upgraded or removed), a build that never finished. A venv counts as finished only once its .stamp is
# written, as the build's last step: a venv cannot be built under another name and renamed into place,
# because its scripts' #! lines carry the path it was built at.
# BOOTSTRAP_FUNCTIONS_ONLY=1 defines the functions below and stops there (tests/test_bootstrap.py).

PY=${PYTHON:-python3}
OCTOPRINT_SPEC='octoprint>=1.11,<1.12'

_bootstrap_stamp() {  # what NAME/.stamp holds once NAME is finished
    case $1 in
        .venv) sha256sum pyproject.toml | cut -c1-16 ;;
        .venv-octoprint) echo "$OCTOPRINT_SPEC" ;;
    esac
}

# Removes what stands where a venv belongs but cannot be one: a dangling symlink, a symlink out of the
# repository (a tracked `.venv-octoprint -> /tmp/...` once broke every fresh clone), a non-directory.
_bootstrap_clear() {
    local name=$1 target
    if [ -L "$name" ]; then
        target=$(readlink -- "$name")
        if [ ! -e "$name" ]; then
            echo "bootstrap: removing $name: a dangling symlink (-> $target)"
            rm -f -- "$name"
            return
        fi
        case "$(realpath -- "$name")/" in
            "$(realpath .)"/*) ;;
            *)
                echo "bootstrap: removing $name: a symlink out of the repository (-> $target)"
                rm -f -- "$name"
                return
                ;;
        esac
    fi
    if [ -e "$name" ] && [ ! -d "$name" ]; then
        echo "bootstrap: removing $name: not a directory"
        rm -f -- "$name"
    fi
}

# Whether NAME's programs run. -I keeps the working directory off sys.path, so `import controller` proves
# the editable install, not the source tree beside it; the import rather than `farmctl --help` so that a
# bug in the CLI never sends bootstrap into a rebuild.
_bootstrap_runs() {
    case $1 in
        .venv) [ -x .venv/bin/farmctl ] && .venv/bin/python -I -c 'import controller' >/dev/null 2>&1 ;;
        .venv-octoprint) .venv-octoprint/bin/octoprint --version >/dev/null 2>&1 ;;
        *) return 1 ;;
    esac
}

_bootstrap_sound() {  # finished (its stamp is current) and its programs run
    [ -d "$1" ] && [ "$(cat "$1/.stamp" 2>/dev/null)" = "$(_bootstrap_stamp "$1")" ] && _bootstrap_runs "$1"
}

# Builds NAME, or completes an unfinished or outdated NAME in place (pip adds only what is missing);
# the stamp is written last, once NAME's programs run. Steps are chained by hand: a function called
# from `if` or `||` runs without set -e.
_bootstrap_build() {
    local name=$1 what=$2 took=$3 why="" stamp
    shift 3
    if [ -d "$name" ] && ! "$name/bin/python" -I -m pip --version >/dev/null 2>&1; then
        echo "bootstrap: removing $name: python or pip does not run (base Python gone, or a build cut short)"
        rm -rf -- "$name"
    elif [ -d "$name" ]; then
        stamp=$(cat "$name/.stamp" 2>/dev/null)
        if [ -z "$stamp" ]; then
            why="no .stamp: a build was cut short or predates stamps"
        elif [ "$stamp" != "$(_bootstrap_stamp "$name")" ]; then
            why="its requirements changed"
        else
            echo "bootstrap: removing $name: finished, but its programs do not run"
            rm -rf -- "$name"
        fi
    fi
    if [ -d "$name" ]; then
        echo "bootstrap: completing $name ($what; $why; up to $took)"
    else
        echo "bootstrap: building $name ($what, $took)"
    fi
    rm -f -- "$name/.stamp"
    { [ -d "$name" ] || "$PY" -m venv "$name"; } &&
        "$name/bin/python" -m pip install -q --upgrade pip &&
        "$name/bin/python" -m pip install -q "$@" || return 1
    if ! _bootstrap_runs "$name"; then
        echo "bootstrap: $name is built, but its programs do not run; left unfinished (no .stamp)" >&2
        return 1
    fi
    _bootstrap_stamp "$name" >"$name/.stamp"
}

if [ "${BOOTSTRAP_FUNCTIONS_ONLY:-}" != 1 ]; then
    if [ ! -f deploy/bootstrap.sh ]; then
        echo "bootstrap: source me from the repository root (no deploy/bootstrap.sh in $PWD)" >&2
        exit 1
    fi
    if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "farmctl needs Python >= 3.11 (found $("$PY" --version 2>&1))" >&2
        exit 1
    fi
    if ! "$PY" -m venv --help >/dev/null 2>&1 || ! "$PY" -c 'import ensurepip' >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv python3-dev gcc >/dev/null
    fi
    for _bootstrap_name in .venv .venv-octoprint; do
        _bootstrap_clear "$_bootstrap_name"
    done
    unset _bootstrap_name
    # Measured from scratch with an empty pip cache on a 2-core x86 PC: 38 s and 36-42 s.
    _bootstrap_took="~40 s on a cold pip cache, longer on a Pi"
    if ! _bootstrap_sound .venv; then
        _bootstrap_build .venv "farmctl and its dependencies" "$_bootstrap_took" -e '.[dev]' || exit 1
    fi
    if ! _bootstrap_sound .venv-octoprint; then
        _bootstrap_build .venv-octoprint "OctoPrint 1.11 with its Virtual Printer" "$_bootstrap_took" \
            "$OCTOPRINT_SPEC" || exit 1
    fi
    unset _bootstrap_took
    export FARMCTL_OCTOPRINT_BIN="$PWD/.venv-octoprint/bin/octoprint"
fi
