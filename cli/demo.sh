#!/usr/bin/env bash
# README command 1: set up (if needed) and run the main job on the built-in sample shoot.
# Arguments go to `reshoot demo` (e.g. --preset tiny, --dir PATH, --force).
source "$(dirname "$0")/bootstrap.sh"
cd "$REPO"
exec "$VENV/bin/reshoot" demo "$@"
