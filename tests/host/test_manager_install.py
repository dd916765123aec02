"""A ComfyUI-Manager install, reproduced: fresh venvs with the latest setuptools and with none (issue 9, item 7).

Runs ``tools/check_manager_install.py``: torch + ComfyUI in a new venv, setuptools upgraded to the newest release
(no ``pkg_resources``) or removed, ``pip install -r requirements.txt``, ``install.py``, then a real ComfyUI server
started by that venv loads the pack (no IMPORT FAILED) and runs the shipped workflow on the tiny models.
Slow (minutes: a torch + ComfyUI venv, copied for each scenario; ``$SINGER_MANAGER_BASE`` keeps that venv
between runs and pip's cache makes the pack installs cheap), so marked ``slow``; CI runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.host, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(3600)
def test_pack_installs_and_runs_with_latest_setuptools_and_without_setuptools(tmp_path):
    command = [sys.executable, str(REPO / "tools" / "check_manager_install.py"), "--work", str(tmp_path)]
    if os.environ.get("SINGER_MANAGER_BASE"):  # CI keeps the torch + ComfyUI venv between runs (.ci/run)
        command += ["--base-cache", os.environ["SINGER_MANAGER_BASE"]]
    done = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    details = done.stdout[-8000:] + done.stderr[-4000:]
    assert {report["scenario"] for report in reports} == {"latest-setuptools", "no-setuptools"}, details
    for report in reports:
        assert report["ok"], json.dumps(report, indent=1)[:8000]
    latest = next(report for report in reports if report["scenario"] == "latest-setuptools")
    assert int(latest["setuptools"].split(".")[0]) >= 81 and latest["pkg_resources"] is False
    assert next(report for report in reports if report["scenario"] == "no-setuptools")["setuptools"] is None
    assert done.returncode == 0, details
