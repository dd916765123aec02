"""pytorch_wavelets imports whatever setuptools the environment has (issue 9, item 7).

pytorch_wavelets 1.3 imports ``pkg_resources`` at package import; setuptools >= 81 and setuptools-less venvs
have none. A fresh interpreter with ``pkg_resources`` made unimportable (a meta-path finder raising
``ModuleNotFoundError``, as Python does when the module is absent) reproduces that without touching the
environment; tools/check_manager_install.py checks it for real in fresh venvs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from singer_core.models.wavelets import HaarDWT, HaarIDWT, import_pytorch_wavelets
from tests.conftest import assert_close, fixture_io

REPO = Path(__file__).resolve().parent.parent

_WITHOUT_PKG_RESOURCES = r"""
import importlib.abc, json, sys

class NoPkgResources(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pkg_resources" or name.startswith("pkg_resources."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoPkgResources())
report = {}
try:
    import pytorch_wavelets  # what a plain import does on setuptools >= 81
    report["plain_import"] = "ok"
except ModuleNotFoundError as error:
    report["plain_import"] = f"ModuleNotFoundError: {error.name}"
for name in [n for n in sys.modules if n.startswith("pytorch_wavelets")]:
    del sys.modules[name]

import torch
from safetensors.torch import load_file
from singer_core.models.wavelets import HaarDWT, HaarIDWT

io = load_file(sys.argv[1])
bands = HaarDWT()(io["input.x"])
report["dwt_error"] = max((b - io[f"output.{n}"]).abs().max().item() for b, n in zip(bands, ("LL", "LH", "HL", "HH")))
report["idwt_roundtrip_error"] = (HaarIDWT()(*bands) - io["input.x"]).abs().max().item()
report["pkg_resources_left_in_sys_modules"] = "pkg_resources" in sys.modules

import pytorch_wavelets  # the whole package, as another node pack would use it afterwards
yl, yh = pytorch_wavelets.DTCWTForward(J=1)(torch.ones(1, 1, 8, 8))  # loads its tables via resource_stream
report["dtcwt_shapes"] = [list(yl.shape), list(yh[0].shape)]
print(json.dumps(report))
"""


def test_imports_and_runs_without_pkg_resources():
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PKG_RESOURCES, str(REPO / "tests" / "fixtures" / "dwt.io.safetensors")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["plain_import"] == "ModuleNotFoundError: pkg_resources", report  # the simulation is faithful
    assert report["dwt_error"] < 1e-6 and report["idwt_roundtrip_error"] < 1e-6, report
    assert report["pkg_resources_left_in_sys_modules"] is False, report
    assert report["dtcwt_shapes"] == [[1, 1, 8, 8], [1, 1, 6, 4, 4, 2]], report


def test_dwt_fixture_exact_in_this_environment():
    io = fixture_io("dwt")
    for band, name in zip(HaarDWT()(io["input.x"]), ("LL", "LH", "HL", "HH"), strict=True):
        assert_close(band, io[f"output.{name}"], 1e-6, name)  # official matrices vs filter bank: 2.4e-7
    assert torch.allclose(HaarIDWT()(*HaarDWT()(io["input.x"])), io["input.x"], atol=1e-6)
    assert import_pytorch_wavelets() is sys.modules["pytorch_wavelets"]
