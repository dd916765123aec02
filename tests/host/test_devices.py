"""nodes/devices.py against ComfyUI's real model_management, in this process (ComfyUI imported, --cpu)."""

from __future__ import annotations

import sys

import pytest
import torch

from singer_core.errors import InputError
from tests.host.harness import load_comfy_host

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def mm():
    comfy_host = load_comfy_host()
    comfy_dir = str(comfy_host.install())
    if comfy_dir not in sys.path:
        sys.path.append(comfy_dir)  # after the repo: our `nodes` package, not ComfyUI's nodes.py
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_management

    return comfy.model_management


@pytest.fixture
def devices(mm):
    import nodes.devices

    yield nodes.devices
    mm.unload_all_models()


def _managed(devices):
    return devices.managed(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GroupNorm(2, 4)), "test model")


def test_a_model_at_work_is_registered_and_unloaded_by_comfy(mm, devices):
    patcher = _managed(devices)
    with devices.working([patcher], memory_required=2**20) as device:
        assert device == mm.get_torch_device()
        assert [loaded.model for loaded in mm.current_loaded_models] == [patcher]
    assert patcher in mm.loaded_models()  # stays loaded between runs, as ComfyUI's own models
    mm.unload_all_models()  # what POST /free with unload_models does
    assert patcher not in mm.loaded_models()


def test_an_unload_during_the_work_waits_for_its_end(mm, devices):
    patcher = _managed(devices)
    detached = []
    original = type(patcher).__mro__[1].detach

    def spy(self, unpatch_all=True):
        detached.append(unpatch_all)
        return original(self, unpatch_all)

    with devices.working([patcher], memory_required=0):
        type(patcher).__mro__[1].detach = spy
        try:
            mm.unload_all_models()
            assert patcher.pending_detach and detached == []  # the model stays whole where it computes
        finally:
            type(patcher).__mro__[1].detach = original
    assert not patcher.pending_detach  # detached once the work ended


def test_never_partially_unloaded(devices):
    patcher = _managed(devices)
    assert patcher.partially_unload(torch.device("cpu"), memory_to_free=10**9) == 0


def test_novram_is_refused_on_a_gpu(mm, devices, monkeypatch):
    patcher = _managed(devices)
    patcher.load_device = torch.device("cuda")
    monkeypatch.setattr(mm, "vram_state", mm.VRAMState.NO_VRAM)
    with pytest.raises(InputError, match="--novram"):
        devices.load_for_work([patcher], 0)
    assert patcher not in mm.loaded_models()


def test_auto_precision_is_comfys_choice_for_the_device(devices):
    assert devices.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert devices.resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(InputError, match="precision 'fp8'"):
        devices.resolve_dtype("fp8", torch.device("cpu"))


def test_onnx_runs_on_the_cpu_when_comfy_does(devices):
    assert devices.onnx_providers() == ["CPUExecutionProvider"]


def test_out_of_memory_is_recognised_as_comfyui_recognises_it(mm):
    """``nodes.compat.is_oom``: ComfyUI's own test where the host has one (0.28+), else torch's error class."""
    from nodes.compat import is_oom

    errors = [torch.OutOfMemoryError("CUDA out of memory"), RuntimeError("size mismatch"), ValueError("bad")]
    assert [is_oom(error) for error in errors] == [True, False, False]
    if hasattr(mm, "is_oom"):
        assert [is_oom(error) for error in errors] == [bool(mm.is_oom(error)) for error in errors]
