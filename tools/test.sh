#!/usr/bin/env bash
# The project's test command: set up the environment, lint, run the test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${SINGER_VENV:-$root/.venv}
bash "$root/tools/setup_env.sh"
# The second ComfyUI host (0.28.2, own venv, stamped): built from ../shared when that archive is there, else its
# host tests are skipped with a message naming it.
"$venv/bin/python" "$root/tools/comfy_host.py" install --host 0.28.2 --if-available > /dev/null
cd "$root"
"$venv/bin/python" -m ruff check .
"$venv/bin/python" -m pytest -q "$@"
