"""The registry (pyproject.toml) and ComfyUI-Manager / pip (requirements.txt) install the same packages."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_pyproject_dependencies_are_the_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == _requirements()


def test_torch_is_never_a_runtime_requirement():
    names = {r.split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in _requirements()}
    assert not names & {"torch", "torchvision", "torchaudio"}
