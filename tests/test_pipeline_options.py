"""Every generation option on the tiny models (fast: 64x64, clips of 4, one step unless stated)."""

from __future__ import annotations

import pytest
import torch

from singer_core.checkpoint import load_net
from singer_core.pipeline import generate
from singer_core.pipeline.clips import crossfade
from tests.conftest import assert_close, fixture_io
from tests.test_pipeline_generate import SMALL, RecordingCodec, small_options, small_reference, song
from tests.tiny_models.net import write_tiny_singer_checkpoint


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return load_net(write_tiny_singer_checkpoint(tmp_path_factory.mktemp("net") / "net.safetensors"))


@pytest.fixture(scope="module")
def io():
    return fixture_io("pipeline")


@pytest.fixture(scope="module")
def baseline(net, io):
    """Default options, 6 frames = 2 clips."""
    return generate(net, RecordingCodec(), small_reference(io), song(6), small_options()).frames


def test_latent_motion_skips_the_decode_encode_round_trip(net, io, baseline):
    codec = RecordingCodec()
    result = generate(net, codec, small_reference(io), song(6), small_options(motion_source="latent"))
    assert len(codec.encoded) == 1  # only the first clip's [reference, copies]
    assert torch.equal(result.frames[:4], baseline[:4])  # first clip is unchanged
    assert (result.frames[4:] - baseline[4:]).abs().max() > 1e-4


def test_overlap_cross_fades_consecutive_clips(net, io):
    codec = RecordingCodec()
    result = generate(net, codec, small_reference(io), song(7), small_options(overlap=1, motion_frames=2))
    clips = codec.decoded
    assert len(clips) == 2  # stride 3: clips cover frames 0-3 and 3-6
    frames = result.frames.permute(0, 3, 1, 2)
    assert result.frames.shape[0] == 7
    assert torch.allclose(frames[3], crossfade(clips[0][3:4], clips[1][0:1])[0], atol=1e-6)
    assert torch.allclose(frames[4:6], clips[1][1:3], atol=1e-6)
    assert torch.equal(codec.encoded[1][1:], frames[1:3] * 2 - 1)  # motion frames precede the clip's start


def test_color_match_pulls_clips_to_the_reference_colours(net, io, baseline):
    reference = small_reference(io)
    result = generate(net, RecordingCodec(), reference, song(4), small_options(color_match=True))
    ref_mean = ((reference.pixels + 1) / 2).mean(dim=(1, 2))
    plain_error = (baseline[:4].mean(dim=(0, 1, 2)) - ref_mean).abs().max()
    matched_error = (result.frames[:4].mean(dim=(0, 1, 2)) - ref_mean).abs().max()
    assert matched_error < 0.02 < plain_error


@pytest.fixture(scope="module")
def ddim_three_steps(net, io):
    return generate(net, RecordingCodec(), small_reference(io), song(4), small_options(steps=3)).frames


@pytest.mark.parametrize("scheduler", ["dpmpp", "euler"])
def test_fast_schedulers_generate(net, io, ddim_three_steps, scheduler):
    """Same noise schedule, other solver: a different (finite, in-range) video than DDIM's."""
    options = small_options(scheduler=scheduler, steps=3)
    result = generate(net, RecordingCodec(), small_reference(io), song(4), options)
    assert result.frames.shape == (4, SMALL, SMALL, 3) and torch.isfinite(result.frames).all()
    assert (result.frames - ddim_three_steps).abs().max() > 1e-2


@pytest.mark.parametrize("change", [{"lip_weight": 0.0}, {"pose_weight": 2.0}, {"guidance": 1.5}, {"steps": 2}])
def test_weights_guidance_and_steps_change_the_output(net, io, baseline, change):
    result = generate(net, RecordingCodec(), small_reference(io), song(4), small_options(**change))
    assert (result.frames - baseline[:4]).abs().max() > 1e-4


def test_bf16_runs_close_to_fp32(tmp_path, io, baseline):
    net = load_net(write_tiny_singer_checkpoint(tmp_path / "net.safetensors"), dtype=torch.bfloat16)
    result = generate(net, RecordingCodec(), small_reference(io), song(4), small_options(dtype="bf16"))
    assert result.frames.dtype == torch.float32
    assert (result.frames - baseline[:4]).abs().mean() < 0.1


def test_decode_batch_size_does_not_change_the_video(net, io, baseline):
    result = generate(net, RecordingCodec(batch_size=4), small_reference(io), song(4), small_options())
    assert_close(result.frames, baseline[:4], 1e-4, "batched decode")


def test_hallo_net_generates_without_the_spectral_modules(tmp_path, io, baseline):
    hallo = load_net(write_tiny_singer_checkpoint(tmp_path / "hallo.safetensors", kind="hallo"))
    assert hallo.audioembed is None
    result = generate(hallo, RecordingCodec(), small_reference(io), song(4), small_options())
    assert result.frames.shape == (4, SMALL, SMALL, 3) and torch.isfinite(result.frames).all()
    assert (result.frames - baseline[:4]).abs().max() > 1e-4
