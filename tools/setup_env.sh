#!/usr/bin/env bash
# Create (or reuse) the test virtual environment with everything the tests need.
# SINGER_VENV picks its location (default: .venv in the repository). Re-installs
# only when one of the files that define it changed.
# Then installs the ComfyUI host the host tests run the pack in (tools/comfy_host.py;
# SINGER_COMFY_HOST picks its folder, default .comfy_host/); it keeps its own stamp,
# so this step is instant once done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${SINGER_VENV:-$root/.venv}
stamp_src=$(cat "$root/requirements.txt" "$root/requirements-test.txt" "$root/.ci/constraints.txt" "$0" | sha256sum | cut -c1-16)
if [ ! -f "$venv/.singer-stamp" ] || [ "$(cat "$venv/.singer-stamp")" != "$stamp_src" ]; then
  python3 -m venv "$venv"
  pip() { "$venv/bin/python" -m pip "$@"; }
  pip install -q --upgrade pip
  # torch first, pinned: an unpinned torch pulls the multi-GB CUDA build.
  pip install -q -c "$root/.ci/constraints.txt" torch==2.13.0 wheel
  pip install -q -c "$root/.ci/constraints.txt" -r "$root/requirements.txt" -r "$root/requirements-test.txt"
  # insightface declares opencv-python (GUI build); we use the headless build instead.
  pip install -q --no-deps "insightface>=0.7"
  echo "$stamp_src" > "$venv/.singer-stamp"
fi
"$venv/bin/python" "$root/tools/comfy_host.py" install > /dev/null
