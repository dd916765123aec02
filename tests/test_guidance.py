"""Guidance <= 1: the official no-CFG branch (``do_classifier_free_guidance = guidance_scale > 1.0``),
the conditional half alone; and the one clip-denoising loop shared by ``sampling`` and the pipeline."""

from __future__ import annotations

import pytest
import torch

from singer_core.models.conditions import DenoiseConditions
from singer_core.pipeline import GenerationOptions, generate
from singer_core.pipeline.conditions import build_conditions, project_audio
from singer_core.sampling import ClipInputs, SamplingOptions, encode_reference, official_scheduler, sample_clip
from tests.conftest import fixture_io, fixture_net
from tests.test_pipeline_generate import RecordingCodec, small_options, small_reference, song
from tests.test_sampling_parity import _clip
from tests.tiny_models.vae import tiny_vae


@pytest.fixture(scope="module")
def net():
    return fixture_net()


@pytest.fixture(scope="module")
def io():
    return fixture_io("pipeline")


def _unet_batches(net):
    """Record the batch of every denoising-UNet call (CFG pair = 2, conditional half alone = 1)."""
    calls: list[int] = []
    handle = net.denoising_unet.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    return calls, handle


@pytest.mark.parametrize("guidance", [1.0, 0.5])
def test_no_guidance_is_the_official_branch_with_half_the_unet_work(net, io, guidance):
    """The official no-CFG branch written out by hand from the model's parts: image tokens of the face
    alone, the write pass on [reference, motion frames] with them, MSM audio tokens without the zero half,
    the UNet on the latents alone, no guidance arithmetic, then the DDIM step."""
    clip = _clip(io, encode_reference(tiny_vae(), io["input.ref_image"][0]))
    motion = tuple(io["input.motion_scale"].tolist())
    calls, handle = _unet_batches(net)
    try:
        got = sample_clip(net, clip, SamplingOptions(steps=3, guidance_scale=guidance, motion_scale=motion))
    finally:
        handle.remove()
    assert calls == [1, 1, 1]

    scheduler = official_scheduler()
    scheduler.set_timesteps(3)
    latents = clip.noise * scheduler.init_noise_sigma
    with torch.no_grad():
        tokens = net.imageproj(clip.face_embedding)
        conditions = DenoiseConditions(
            bank=net.reference_unet.write_bank(clip.ref_latents, None, tokens),
            image_tokens=tokens,
            audio_tokens=net.audioembed(clip.audio_tokens, latents),
            face_features=net.face_locator(clip.face_region[:, :, None]),
            masks=clip.masks,
            motion_scale=motion,
        )
        for t in scheduler.timesteps:
            noise_pred = net.denoising_unet(scheduler.scale_model_input(latents, t), t, conditions)
            latents = scheduler.step(noise_pred, t, latents, eta=0.0).prev_sample
    assert torch.equal(got, latents)


@pytest.mark.parametrize("guidance", [3.5, 1.0])
def test_pipeline_clip_is_the_sampling_clip(net, io, guidance):
    """``generate``'s first clip and ``sample_clip`` on the same inputs give the same bits: both run
    ``sampling.denoise_clip``; without guidance every UNet call has the conditional half alone."""
    options = small_options(guidance=guidance, steps=2)
    reference, audio, codec = small_reference(io), song(4), RecordingCodec()
    calls, handle = _unet_batches(net)
    try:
        result = generate(net, codec, reference, audio, options, output="latents")
    finally:
        handle.remove()
    assert calls == [2 if guidance > 1 else 1] * 2

    shape = (1, 4, options.clip_length, options.height // 8, options.width // 8)
    noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(options.seed))
    cpu = torch.device("cpu")
    clip = ClipInputs(
        ref_latents=codec.inner.encode(codec.encoded[0]),
        face_embedding=reference.face_embedding[None],
        face_region=reference.face_region[None],
        masks=build_conditions(net, reference, options.clip_length, cpu, torch.float32).masks,
        audio_tokens=project_audio(net, audio.windows, cpu, torch.float32, options.clip_length)[None],
        noise=noise,
    )
    latents = sample_clip(net, clip, SamplingOptions(steps=2, guidance_scale=guidance))
    assert torch.equal(result.latents, latents[0].transpose(0, 1))


def test_guidance_one_or_less_is_accepted_without_cfg():
    assert GenerationOptions(guidance=1.0).guidance == 1.0
    assert SamplingOptions(guidance_scale=1.0).cfg is False and SamplingOptions(guidance_scale=1.01).cfg is True
