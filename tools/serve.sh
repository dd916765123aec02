#!/usr/bin/env bash
# The main job: on a fresh machine, set up the environment (CPU torch, ComfyUI host) and start
# ComfyUI with this pack loaded and the SINGER workflow ready to open. Prints the URL and which
# model files are still missing and where they go, with the one command that fetches them all
# (`python -m singer_core download --models ...`). Extra arguments go to `comfy_host.py serve`
# (--port, --base-dir, --dir).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${SINGER_VENV:-$root/.venv}
bash "$root/tools/setup_env.sh"
exec "$venv/bin/python" "$root/tools/comfy_host.py" serve "$@"
