"""A ComfyUI-Manager install, reproduced: fresh venvs with the latest setuptools and with none (issue 9, item 7),
on ComfyUI 0.3.75, and with the latest setuptools on ComfyUI 0.28.2 (issue 15).

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

from tests.host.harness import load_comfy_host

pytestmark = [pytest.mark.host, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _check(tmp_path, host: str, scenarios: tuple[str, ...]) -> list[dict]:
    """Run tools/check_manager_install.py for ``host``; its JSON reports, each checked to be ok."""
    command = [sys.executable, str(REPO / "tools" / "check_manager_install.py"), "--work", str(tmp_path),
               "--host", host, *(arg for scenario in scenarios for arg in ("--scenario", scenario))]
    if os.environ.get("SINGER_MANAGER_BASE"):  # CI keeps the torch + ComfyUI venvs between runs (.ci/run)
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
    assert {report["scenario"] for report in reports} == set(scenarios), details
    for report in reports:
        assert report["ok"] and report["host"] == host, json.dumps(report, indent=1)[:8000]
    assert done.returncode == 0, details
    return reports


@pytest.mark.timeout(3600)
def test_pack_installs_and_runs_with_latest_setuptools_and_without_setuptools(tmp_path):
    reports = _check(tmp_path, "0.3.75", ("latest-setuptools", "no-setuptools"))
    latest = next(report for report in reports if report["scenario"] == "latest-setuptools")
    assert int(latest["setuptools"].split(".")[0]) >= 81 and latest["pkg_resources"] is False
    assert next(report for report in reports if report["scenario"] == "no-setuptools")["setuptools"] is None


@pytest.mark.timeout(3600)
def test_pack_installs_and_runs_on_comfyui_0_28_2(tmp_path):
    """One scenario on 0.28.2: what depends on the host (its pins resolved with ours, the pack loading, the
    workflow) is covered by it; setuptools' absence is the pack's own matter, checked on 0.3.75 above."""
    comfy_host = load_comfy_host()
    try:
        comfy_host.require_archive_028()
    except comfy_host.HostUnavailable as missing:
        pytest.skip(str(missing))
    (report,) = _check(tmp_path, "0.28.2", ("latest-setuptools",))
    assert int(report["setuptools"].split(".")[0]) >= 81 and report["pkg_resources"] is False
