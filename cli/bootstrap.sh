#!/usr/bin/env bash
# Set-up shared by cli/demo.sh and cli/test.sh: Debian packages, a virtual environment in .venv,
# and reshoot with its dependencies, torch pinned by cli/constraints.txt (a CPU build; GPU users
# edit that pin). Re-running is cheap: the install is skipped while pyproject.toml and the
# constraints are unchanged. Sourced, not run: it leaves VENV and REPO set.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RESHOOT_VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"
say() { printf '\033[1m[reshoot setup]\033[0m %s\n' "$*" >&2; }

# 1. Debian packages: Mesa's EGL for the sample's headless mesh renderer (pyrender); libusb for open3d;
#    g++ for reshoot's compiled CPU kernels.
missing=()
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libusb-1.0-0 g++; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "missing Debian packages ${missing[*]}: run 'sudo apt-get install ${missing[*]}' and try again"; exit 1
  fi
fi

# 2. Python 3.11+ and the virtual environment.
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "reshoot needs Python 3.11 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1). Set PYTHON=python3.11."; exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# 3. reshoot and its dependencies, unless already installed from these exact files.
stamp="$VENV/.reshoot-install-stamp"
want="$(cat "$REPO/pyproject.toml" "$REPO/cli/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing reshoot and its dependencies (a few minutes the first time)"
  pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q -c "$REPO/cli/constraints.txt")
  "${pip[@]}" -U pip
  "${pip[@]}" -e "$REPO[all,test]"
  # pyrender pins PyOpenGL 3.1.0, whose EGL support fails; 3.1.10 works (pip warns about the pin).
  "${pip[@]}" "PyOpenGL==3.1.10" 2>&1 | grep -v -e "dependency resolver" -e "pyrender 0.1.45 requires" >&2 || true
  "$VENV/bin/python" -c "import OpenGL; assert OpenGL.__version__ == '3.1.10', OpenGL.__version__"
  echo "$want" > "$stamp"
fi

# 4. reshoot's compiled CPU kernels (g++ and ninja; once per machine; a failure is not fatal: the torch
#    rasterizer runs instead, slower, with a warning).
"$VENV/bin/python" -m reshoot.splat.build_kernels || say "continuing without the compiled kernels"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
