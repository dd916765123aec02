"""Three official DDIM steps + VAE decode on the tiny Net and VAE (fixtures README section 7)."""

from __future__ import annotations

import pytest
import torch

from singer_core.conformance.common import MODULE_ATOL, UNET_ATOL
from singer_core.errors import CancelledError, InputError
from singer_core.models.conditions import MaskPyramid
from singer_core.net import SingerNet
from singer_core.sampling import ClipInputs, SamplingOptions, decode_video, encode_reference, sample_clip
from tests.conftest import assert_close, fixture_io, fixture_json, fixture_net
from tests.tiny_models.vae import tiny_vae


@pytest.fixture(scope="module")
def net() -> SingerNet:
    return fixture_net()


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return fixture_io("pipeline")


@pytest.fixture(scope="module")
def vae():
    return tiny_vae()


def _clip(io, ref_latents: torch.Tensor) -> ClipInputs:
    masks = MaskPyramid(*[[io[f"input.{kind}_mask.{i}"] for i in range(4)] for kind in ("full", "face", "lip")])
    return ClipInputs(
        ref_latents=ref_latents,
        face_embedding=io["input.face_emb"],
        face_region=io["input.face_region"],
        masks=masks,
        audio_tokens=io["input.audio_tensor"],
        noise=io["draw.init_latents"],
    )


def _options(io) -> SamplingOptions:
    call = fixture_json("pipeline")["call"]
    return SamplingOptions(
        steps=call["num_inference_steps"],
        guidance_scale=call["guidance_scale"],
        motion_scale=tuple(io["input.motion_scale"].tolist()),
        eta=call["eta"],
    )


def test_pipeline_matches_official(net, io, vae) -> None:
    ref_latents = encode_reference(vae, io["input.ref_image"][0])
    assert_close(ref_latents, io["internal.ref_image_latents_scaled"], MODULE_ATOL, "ref_image_latents_scaled")
    steps = []
    latents = sample_clip(net, _clip(io, ref_latents), _options(io), callback=lambda i, n, x: steps.append(x))
    assert len(steps) == 3
    for i, after in enumerate(steps):
        assert_close(after, io[f"step{i}.latents_after"], UNET_ATOL, f"step{i}.latents_after")
    assert_close(decode_video(vae, latents), io["output.videos"], UNET_ATOL, "output.videos")


def test_cancel_check_runs_before_every_step(net, io) -> None:
    steps, checks = [], []

    def cancel() -> bool:
        checks.append(len(steps))
        return True

    with pytest.raises(CancelledError):
        sample_clip(
            net, _clip(io, io["internal.ref_image_latents_scaled"]), _options(io),
            callback=lambda i, n, x: steps.append(i), cancel=cancel,
        )
    assert checks == [0] and steps == []


def test_rejects_mismatched_audio(net, io) -> None:
    clip = _clip(io, io["internal.ref_image_latents_scaled"])
    clip.audio_tokens = clip.audio_tokens[:, :2]
    with pytest.raises(InputError, match="audio covers 2 frames"):
        sample_clip(net, clip, _options(io))


def test_non_square_latents(net) -> None:
    """Any h x w (multiple of 8 here): the audio and motion paths use the real (h, w), not sqrt(hw)."""
    generator = torch.Generator().manual_seed(0)
    frames, height, width = 2, 16, 24
    levels = [(height >> i) * (width >> i) for i in range(4)]

    def pyramid() -> list[torch.Tensor]:
        return [torch.rand(frames, hw, generator=generator).round() for hw in levels]

    clip = ClipInputs(
        ref_latents=torch.randn(3, 4, height, width, generator=generator),
        face_embedding=torch.randn(1, 512, generator=generator),
        face_region=torch.rand(1, 3, 8 * height, 8 * width, generator=generator),
        masks=MaskPyramid(pyramid(), pyramid(), pyramid()),
        audio_tokens=torch.randn(1, frames, 32, 40, generator=generator),
        noise=torch.randn(1, 4, frames, height, width, generator=generator),
    )
    latents = sample_clip(net, clip, SamplingOptions(steps=1))
    assert latents.shape == (1, 4, frames, height, width)
    assert torch.isfinite(latents).all()
