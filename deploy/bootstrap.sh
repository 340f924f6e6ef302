#!/bin/sh
# Create the virtual environment and install the platform into it.
# Finds a Python >= 3.12 by itself: $PYTHON if set, then the usual names on PATH,
# then pyenv, Homebrew and python.org install locations.
set -eu
VENV="${1:-.venv}"

is_suitable() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null
}

find_python() {
    for candidate in ${PYTHON:-} python3.14 python3.13 python3.12 python3 python; do
        path=$(command -v "$candidate" 2>/dev/null) || continue
        if is_suitable "$path"; then echo "$path"; return 0; fi
    done
    for path in "$HOME"/.pyenv/versions/*/bin/python3 /root/.pyenv/versions/*/bin/python3 \
                /opt/homebrew/bin/python3.1[2-9] /usr/local/bin/python3.1[2-9] \
                /Library/Frameworks/Python.framework/Versions/3.1[2-9]/bin/python3; do
        [ -x "$path" ] || continue
        if is_suitable "$path"; then echo "$path"; return 0; fi
    done
    return 1
}

if [ ! -x "$VENV/bin/python" ] || ! is_suitable "$VENV/bin/python"; then
    PY=$(find_python) || { echo "No Python 3.12 or newer found; install one or set PYTHON=/path/to/python3.12" >&2; exit 1; }
    echo "Creating $VENV with $PY ($("$PY" --version))"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
fi

"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[dev,embedded,mv,profiles]"
# Packages pinned in pyproject's [tool.vpp] install-without-deps (see the comment there).
"$VENV/bin/python" - <<'PY' | xargs -r "$VENV/bin/python" -m pip install --quiet --no-deps
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["tool"]["vpp"]["install-without-deps"]))
PY
touch "$VENV/.installed"
