#!/usr/bin/env bash
# The project's test command: set up the environment, lint, run the test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${SINGER_VENV:-$root/.venv}
bash "$root/tools/setup_env.sh"
cd "$root"
"$venv/bin/python" -m ruff check .
"$venv/bin/python" -m pytest -q "$@"
