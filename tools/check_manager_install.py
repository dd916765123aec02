#!/usr/bin/env python3
"""Reproduce a ComfyUI-Manager install of this pack in fresh venvs and run the shipped workflow in each.

    python tools/check_manager_install.py [--work DIR] [--scenario latest-setuptools] [--scenario no-setuptools]
                                          [--host 0.3.75|0.28.2]

Each scenario is what a user's environment looks like after ComfyUI-Manager installs the pack:

1. a new venv with torch (the constraints file's pin, ``.ci/constraints.txt``) and ComfyUI's own requirements
   (``tools/comfy_host.py install``, run by the venv's Python; for ``--host 0.28.2`` the host's own venv built
   ``--without-pack`` from ``../shared/comfyui/ComfyUI-0.28.2.tar.gz``), built once and copied for each scenario;
2. setuptools as users have it: ``latest-setuptools`` upgrades to the newest release (no ``pkg_resources``
   from 81 on; what ``pip install torch`` brings on Python >= 3.12), ``no-setuptools`` removes it (ComfyUI
   Desktop / uv venvs have none);
3. ``pip install -r requirements.txt`` and ``python install.py``, as the Manager runs them;
4. a real ComfyUI server started by that venv's Python with the pack in ``custom_nodes/``: its log must have no
   ``IMPORT FAILED`` and every SINGER node must be registered; then the shipped workflow (``workflows/singer.json``,
   the host tests' fast settings: tiny random models, 64x64, 1 step) must run to a saved video.

``--base-cache DIR`` keeps the torch + ComfyUI venv between runs (CI: ``$SINGER_MANAGER_BASE``, set by
``.ci/run``); each scenario's venv is always a new copy of it. Tiny models are written by the calling Python (it
has the test dependencies); the venvs get only what a user gets. One JSON line per scenario is printed
(setuptools version found, seconds per stage); exit status 1 when a scenario fails. pip's cache makes the pack
installs cheap. Called by tests/host/test_manager_install.py.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / ".ci" / "constraints.txt"
SCENARIOS = ("latest-setuptools", "no-setuptools")
SINGER_NODES = ("SingerCheckpointLoader", "SingerAudioEncoderLoader", "SingerAudioEncode", "SingerSampler")
TORCH_PIN = "torch==2.13.0"


def _load_comfy_host():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.host.harness import load_comfy_host

    return load_comfy_host()


def _run(cmd: list[str], log: Path, **kwargs) -> subprocess.CompletedProcess:
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(map(str, cmd))}\n")
        out.flush()
        done = subprocess.run(list(map(str, cmd)), stdout=out, stderr=subprocess.STDOUT, **kwargs)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-6000:]
        raise RuntimeError(f"command failed ({done.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return done


def _setuptools_version(python: Path) -> str | None:
    code = "import importlib.metadata as m\ntry: print(m.version('setuptools'))\nexcept m.PackageNotFoundError: pass"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return out or None


def _pkg_resources_importable(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import pkg_resources"], capture_output=True).returncode == 0


def _base_stamp() -> str:
    """What the torch + ComfyUI venv depends on; a cached one with another stamp is rebuilt."""
    parts = [CONSTRAINTS.read_text(), (REPO / "tools" / "comfy_host.py").read_text(), TORCH_PIN, sys.version]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def make_comfyui_venv(base: Path, log: Path, seconds: dict, host: str) -> tuple[Path, Path]:
    """A venv with torch and ComfyUI's requirements, as a user's ComfyUI has before any custom node is added.

    Built in ``base`` once and reused while its stamp matches (``--base-cache`` keeps it between runs): the
    pack is never installed into it, each scenario works on a copy.
    """
    comfy_host = _load_comfy_host()
    if host != comfy_host.COMFY_VERSION:  # the host keeps its own venv and stamp (tools/comfy_host.py)
        started = time.monotonic()
        host_dir = base / f"host-{host}"
        _run([sys.executable, REPO / "tools" / "comfy_host.py", "install", "--host", host, "--dir", host_dir,
              "--without-pack"], log)
        seconds["venv_torch_comfyui"] = round(time.monotonic() - started, 1)
        return comfy_host.venv_python(host_dir).parent.parent, host_dir / "ComfyUI"
    venv = base / "venv-comfyui"
    host_dir = base / "host"
    ready = venv / ".ready"
    if ready.is_file() and ready.read_text().strip() == _base_stamp():
        seconds["venv_torch_comfyui"] = 0.0
        return venv, host_dir / "ComfyUI"
    shutil.rmtree(venv, ignore_errors=True)
    started = time.monotonic()
    _run([sys.executable, "-m", "venv", venv], log)
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "-q", "-c", CONSTRAINTS, TORCH_PIN], log)
    cached_wheels = Path(comfy_host.default_host_dir()) / "wheels"
    if cached_wheels.is_dir():  # the ComfyUI tree comes from a wheel the test host already downloaded
        shutil.copytree(cached_wheels, host_dir / "wheels", dirs_exist_ok=True)
    _run([python, REPO / "tools" / "comfy_host.py", "install", "--dir", host_dir], log)
    ready.write_text(_base_stamp() + "\n")
    seconds["venv_torch_comfyui"] = round(time.monotonic() - started, 1)
    return venv, host_dir / "ComfyUI"


def install_pack(scenario: str, comfyui_venv: Path, work: Path, log: Path, seconds: dict) -> Path:
    """Copy the ComfyUI venv, set setuptools as the scenario says, then install the pack as the Manager does."""
    venv = work / f"venv-{scenario}"
    shutil.rmtree(venv, ignore_errors=True)
    started = time.monotonic()
    # A copy keeps every path inside it relative to its own bin/python (console scripts are not used).
    _run(["cp", "-a", comfyui_venv, venv], log)
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "-q"]
    if scenario == "latest-setuptools":
        _run([*pip, "--upgrade", "setuptools"], log)
    else:
        _run([python, "-m", "pip", "uninstall", "-y", "-q", "setuptools"], log)
    _run([*pip, "-c", CONSTRAINTS, "-r", REPO / "requirements.txt"], log, cwd=REPO)
    _run([python, REPO / "install.py"], log, cwd=REPO)
    if scenario == "no-setuptools":  # whatever the installs pulled back in, the check runs without it
        _run([python, "-m", "pip", "uninstall", "-y", "-q", "setuptools"], log)
    seconds["pack_install"] = round(time.monotonic() - started, 1)
    return python


def run_in_comfyui(python: Path, comfy_dir: Path, base_dir: Path, seconds: dict) -> dict:
    """Start ComfyUI with the venv's Python, check the pack loaded, run the shipped workflow once."""
    comfy_host = _load_comfy_host()
    from tests.host.test_singer_workflow import _fast_workflow, _id, _saved_video

    comfy_host.prepare_base_dir(base_dir)
    from tests.tiny_models.models_dir import write_tiny_models

    models = write_tiny_models(base_dir / "models")
    (base_dir / "input").mkdir(exist_ok=True)
    for name in ("0001.png", "0001.wav"):
        shutil.copy(REPO / "tests" / "data" / name, base_dir / "input" / name)
    started = time.monotonic()
    with comfy_host.ComfyServer(comfy_dir, base_dir, log_path=base_dir / "comfyui.log", python=python) as server:
        seconds["server_start"] = round(time.monotonic() - started, 1)
        log = server.log_text()
        failed = [line for line in log.splitlines() if "IMPORT FAILED" in line]
        registered = set(server.object_info())
        missing = [node for node in SINGER_NODES if node not in registered]
        result = {"import_failed": failed, "missing_nodes": missing}
        if failed or missing:
            result["log_tail"] = log[-4000:]
            return result
        started = time.monotonic()
        prompt = _fast_workflow(server, models, steps=1)
        outcome = server.run(prompt, timeout=900)
        seconds["workflow"] = round(time.monotonic() - started, 1)
        result["workflow"] = outcome.status
        if outcome.status == "success":
            video = _saved_video(server, outcome, _id(prompt, "SaveVideo"))
            result["video_bytes"] = video.stat().st_size if video.is_file() else 0
        else:
            result["error"] = outcome.error.message if outcome.error else outcome.status
            result["log_tail"] = server.log_text()[-4000:]
    return result


def check_scenario(scenario: str, work: Path, base: Path, host: str) -> dict:
    seconds: dict[str, float] = {}
    log = work / f"{scenario}.log"
    started = time.monotonic()
    comfyui_venv, comfy_dir = make_comfyui_venv(base, log, seconds, host)
    python = install_pack(scenario, comfyui_venv, work, log, seconds)
    report = {
        "scenario": scenario,
        "host": host,
        "setuptools": _setuptools_version(python),
        "pkg_resources": _pkg_resources_importable(python),
    }
    report.update(run_in_comfyui(python, comfy_dir, work / f"base-{scenario}", seconds))
    seconds["total"] = round(time.monotonic() - started, 1)
    report["seconds"] = seconds
    report["ok"] = scenario_ok(report)
    return report


def scenario_ok(report: dict) -> bool:
    setuptools_as_intended = (
        report["setuptools"] is None
        if report["scenario"] == "no-setuptools"
        else report["setuptools"] is not None and int(report["setuptools"].split(".")[0]) >= 81
    )
    return (
        setuptools_as_intended
        and not report["pkg_resources"]
        and not report["import_failed"]
        and not report["missing_nodes"]
        and report.get("workflow") == "success"
        and report.get("video_bytes", 0) > 0
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="folder for the venvs (default: a temporary one)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: both")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--base-cache", type=Path, default=None,
                        help="keep the torch + ComfyUI venv here between runs (default: inside --work)")
    parser.add_argument("--host", default="0.3.75", choices=("0.3.75", "0.28.2"), help="ComfyUI version")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("onnx") is None:
        raise SystemExit("run this with the test environment's Python (it writes the tiny test models)")
    work = args.work or Path(tempfile.mkdtemp(prefix="singer-manager-install-"))
    work.mkdir(parents=True, exist_ok=True)
    reports = []
    try:
        for scenario in args.scenario or SCENARIOS:
            try:
                reports.append(check_scenario(scenario, work, args.base_cache or work, args.host))
            except RuntimeError as error:
                reports.append({"scenario": scenario, "host": args.host, "ok": False, "error": str(error)})
            print(json.dumps(reports[-1]), flush=True)
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(report["ok"] for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
