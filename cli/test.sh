#!/usr/bin/env bash
# README command 2: set up (if needed) and run the test suite (the quick default set; slow and GPU
# tests are marked: add `-m slow` or `-m gpu` to run those). Extra arguments go to pytest.
source "$(dirname "$0")/bootstrap.sh"
cd "$REPO"
export RESHOOT_QUIET=1
exec "$VENV/bin/python" -m pytest "$@"
