"""A run computes in the format the net was loaded in and never converts the loaded net."""

from __future__ import annotations

import pytest
import torch

from singer_core.checkpoint import load_net
from singer_core.errors import InputError
from singer_core.pipeline import generate
from singer_core.precision import DTYPES, check_compute_dtype, dtype_name, weight_dtype
from tests.conftest import fixture_io
from tests.test_pipeline_generate import RecordingCodec, small_options, small_reference, song
from tests.tiny_models.net import write_tiny_singer_checkpoint


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return load_net(write_tiny_singer_checkpoint(tmp_path_factory.mktemp("net") / "net.safetensors"))


def test_names_round_trip():
    assert {dtype_name(dtype): dtype for dtype in DTYPES.values()} == DTYPES


def test_weight_dtype_counts_parameters_and_buffers():
    module = torch.nn.Linear(4, 4).to(torch.float16)
    module.register_buffer("table", torch.zeros(100, dtype=torch.bfloat16))
    assert weight_dtype(module) == torch.bfloat16
    assert weight_dtype(torch.nn.ReLU()) == torch.float32


@pytest.mark.parametrize("asked", ["fp16", "bf16"])
def test_another_compute_format_is_refused_and_the_net_is_untouched(net, asked):
    before = {name: tensor.clone() for name, tensor in net.state_dict().items()}
    with pytest.raises(InputError, match=f"loaded in fp32 but this run asks to compute in {asked}"):
        generate(net, RecordingCodec(), small_reference(fixture_io("pipeline")), song(4), small_options(dtype=asked))
    after = net.state_dict()
    assert all(after[name].dtype == t.dtype and torch.equal(after[name], t) for name, t in before.items())


def test_a_half_net_refuses_fp32():
    with pytest.raises(InputError, match="load the checkpoint in fp32"):
        check_compute_dtype(torch.nn.Linear(2, 2).to(torch.bfloat16), torch.float32)


@pytest.mark.parametrize("scheduler", ["ddim", "dpmpp", "euler"])
def test_step_events_carry_the_denoised_estimate(net, scheduler):
    """The x0 prediction of every step (for host previews); at the last step it is the clip's result."""
    events = []
    options = small_options(steps=2, scheduler=scheduler)
    result = generate(net, RecordingCodec(), small_reference(fixture_io("pipeline")), song(4), options,
                      on_progress=events.append, output="latents")
    steps = [e for e in events if e.kind == "step"]
    assert [e.denoised is not None for e in events] == [e.kind == "step" for e in events]
    assert all(e.denoised.shape == (1, 4, 4, 8, 8) for e in steps)
    final = steps[-1].denoised[0].transpose(0, 1).float()
    assert torch.allclose(final, result.latents, atol=1e-5)  # the last x0 estimate is the clip itself
