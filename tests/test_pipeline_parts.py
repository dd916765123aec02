"""Pipeline building blocks that do not need the Net: options, schedulers, codec, clip plan, colour."""

from __future__ import annotations

import pytest
import torch

from singer_core.errors import InputError
from singer_core.pipeline.clips import FrameAssembler, crossfade, pad_frames, plan_clips
from singer_core.pipeline.codec import DiffusersVAECodec, VideoCodec
from singer_core.pipeline.color import match_color
from singer_core.pipeline.options import GenerationOptions
from singer_core.pipeline.schedulers import make_scheduler
from tests.conftest import assert_close, fixture_io
from tests.tiny_models.vae import tiny_vae

# alphas_cumprod against the fixture made on another machine: computed in float32, it is up to 4.2e-7 off its
# float64 value (products of up to 1000 factors, then the zero-SNR rescale), and another CPU's kernels (linspace,
# sqrt, cumprod) land elsewhere in that band: 1.2e-7 here with ATEN_CPU_CAPABILITY=default, 3.0e-7 on an Intel
# Xeon with AMX. Any other schedule is far off: scaled_linear betas 0.12, no zero-SNR rescale 0.02.
SCHEDULE_ATOL = 1e-6


@pytest.fixture(scope="module")
def pipeline_io():
    return fixture_io("pipeline")


# -- options ---------------------------------------------------------------------------------------


def test_default_options_are_the_official_settings():
    opts = GenerationOptions()
    assert (opts.steps, opts.guidance, opts.clip_length, opts.motion_frames, opts.fps) == (40, 3.5, 16, 2, 25)
    assert (opts.width, opts.height, opts.scheduler, opts.dtype, opts.seed) == (512, 512, "ddim", "fp32", 42)
    assert opts.motion_scale == [1.0, 1.0, 1.0]
    assert (opts.motion_source, opts.overlap, opts.color_match) == ("decoded", 0, False)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"steps": 0}, "steps"),
        ({"clip_length": 0}, "clip_length"),
        ({"fps": 0}, "fps"),
        ({"height": 0}, "height"),
        ({"width": 500, "height": 500}, "width"),
        ({"overlap": 16}, "overlap"),
        ({"motion_frames": 15, "overlap": 2}, "motion_frames"),
        ({"motion_frames": 0}, "motion_frames"),
        ({"dtype": "fp8"}, "dtype"),
        ({"scheduler": "pndm"}, "scheduler"),
        ({"motion_source": "pixels"}, "motion_source"),
        ({"guidance": -0.5}, "guidance"),
        ({"guidance": float("nan")}, "guidance"),
        ({"guidance": float("inf")}, "guidance"),
        ({"guidance": "3.5"}, "guidance"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_options_name_the_option(kwargs, named):
    with pytest.raises(InputError, match=named):
        GenerationOptions(**kwargs)


# -- schedulers ------------------------------------------------------------------------------------


def test_ddim_matches_the_official_schedule(pipeline_io):
    scheduler = make_scheduler("ddim")
    scheduler.set_timesteps(3)
    assert scheduler.timesteps.tolist() == [999, 666, 332]
    assert_close(scheduler.alphas_cumprod, pipeline_io["scheduler.alphas_cumprod"], SCHEDULE_ATOL, "alphas_cumprod")
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.alphas_cumprod[-1] == 0


@pytest.mark.parametrize("name", ["dpmpp", "euler"])
def test_fast_schedulers_share_the_noise_schedule(name):
    scheduler = make_scheduler(name)
    reference = make_scheduler("ddim")
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.timestep_spacing == "trailing"
    # Both clamp the zero-SNR end to 2**-24 to keep sigma finite; elsewhere the schedule is the official one, bit
    # for bit: the three schedulers run the same diffusers lines (linspace, rescale_zero_terminal_snr, cumprod) on
    # the same input in this process.
    assert_close(scheduler.alphas_cumprod[:-1], reference.alphas_cumprod[:-1], 0.0, f"{name} alphas_cumprod")


def test_ddim_step_reproduces_the_fixture_update(pipeline_io):
    """One official step: x_{t-1} from the guided v-prediction, using the stored step tensors."""
    scheduler = make_scheduler("ddim")
    scheduler.set_timesteps(3)
    for i, t in enumerate(scheduler.timesteps):
        before = pipeline_io["draw.init_latents"] if i == 0 else pipeline_io[f"step{i - 1}.latents_after"]
        uncond, cond = pipeline_io[f"step{i}.noise_pred"].chunk(2)
        guided = uncond + 3.5 * (cond - uncond)
        after = scheduler.step(guided, t, before, eta=0.0, return_dict=False)[0]
        assert_close(after, pipeline_io[f"step{i}.latents_after"], 1e-5, f"step {i} latents")


# -- codec -----------------------------------------------------------------------------------------


def test_codec_encode_matches_official_latents(pipeline_io):
    codec = DiffusersVAECodec(tiny_vae())
    assert isinstance(codec, VideoCodec) and codec.downscale == 8
    images = pipeline_io["input.ref_image"][0]
    assert_close(codec.encode(images), pipeline_io["internal.ref_image_latents_scaled"], 1e-5, "ref latents")
    # The reference alone encodes to the same latent as inside the batch of three (computed once).
    assert_close(codec.encode(images[:1]), pipeline_io["internal.ref_image_latents_scaled"][:1], 1e-5, "ref alone")


@pytest.mark.parametrize("batch_size", [1, 3])
def test_codec_decode_matches_official_video(pipeline_io, batch_size):
    codec = DiffusersVAECodec(tiny_vae(), batch_size=batch_size)
    latents = pipeline_io["step2.latents_after"][0].transpose(0, 1)  # [f, 4, h, w]
    video = codec.decode(latents)
    # README tolerance for video values; measured 0 (per frame) and 1.3e-5 (batches of 3).
    assert_close(video, pipeline_io["output.videos"][0].transpose(0, 1), 1e-4, "decoded video")


def test_function_codec_wraps_a_host_vae(pipeline_io):
    """A host VAE with ComfyUI's layouts ([N, H, W, 3] in [0, 1], unscaled latents) behind the protocol."""
    from singer_core.pipeline import LATENT_SCALE, FunctionCodec

    vae = tiny_vae()

    def host_encode(pixels_nhwc):  # what a host's VAE.encode does
        return vae.encode(pixels_nhwc.permute(0, 3, 1, 2) * 2 - 1).latent_dist.mean

    def host_decode(latents):  # returns [N, H, W, 3] in [0, 1]
        return (vae.decode(latents).sample / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)

    codec = FunctionCodec(
        encode=lambda images: host_encode(((images + 1) / 2).permute(0, 2, 3, 1)) * LATENT_SCALE,
        decode=lambda latents: host_decode(latents / LATENT_SCALE).permute(0, 3, 1, 2),
    )
    assert isinstance(codec, VideoCodec)
    with torch.no_grad():
        images = pipeline_io["input.ref_image"][0]
        assert_close(codec.encode(images), pipeline_io["internal.ref_image_latents_scaled"], 1e-5, "host encode")
        latents = pipeline_io["step2.latents_after"][0].transpose(0, 1)
        assert_close(codec.decode(latents), pipeline_io["output.videos"][0].transpose(0, 1), 1e-4, "host decode")


def test_codec_tiling_option_changes_the_decode_path():
    vae = tiny_vae()
    vae.config.sample_size = 64  # tiles of 64 px so a 256-px frame is split
    vae.tile_sample_min_size, vae.tile_latent_min_size = 64, 8
    latents = torch.randn(1, 4, 32, 32, generator=torch.manual_seed(0)) * 0.5
    plain = DiffusersVAECodec(vae, tiling=False).decode(latents)
    tiled = DiffusersVAECodec(vae, tiling=True).decode(latents)
    assert tiled.shape == plain.shape == (1, 3, 256, 256)
    assert vae.use_tiling
    assert 0 < (tiled - plain).abs().max() < 1.0


# -- clip plan -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "length", "overlap", "starts"),
    [
        (51, 16, 0, [0, 16, 32, 48]),
        (16, 16, 0, [0]),
        (5, 16, 0, [0]),
        (51, 16, 4, [0, 12, 24, 36]),
        (40, 16, 4, [0, 12, 24]),
    ],
)
def test_plan_clips_covers_the_audio(frames, length, overlap, starts):
    spans = plan_clips(frames, length, overlap)
    assert [s.start for s in spans] == starts
    assert spans[-1].stop >= frames and all(s.length == length for s in spans)


def test_pad_frames_repeats_the_last_entry():
    x = torch.arange(6.0).view(3, 2)
    padded = pad_frames(x, 5)
    assert padded.shape == (5, 2) and torch.equal(padded[3:], x[2:].expand(2, 2))
    assert pad_frames(x, 2) is x


def test_assembler_without_overlap_hands_out_each_clip_at_once():
    asm = FrameAssembler(overlap=0, history=2)
    out = [asm.add(torch.full((4, 1), float(k))).flatten().tolist() for k in range(3)]
    assert out == [[0] * 4, [1] * 4, [2] * 4] and asm.finish() is None
    assert asm.count == 12
    assert asm.window(10, 12).flatten().tolist() == [2.0, 2.0]


def test_assembler_crossfades_the_overlap_and_holds_only_the_tail():
    asm = FrameAssembler(overlap=2, history=1)
    first = asm.add(torch.zeros(4, 1))
    assert first.flatten().tolist() == [0, 0] and asm.count == 2
    assert asm.window(1, 4).flatten().tolist() == [0, 0, 0]  # the last final frame + the waiting tail
    second = asm.add(torch.ones(4, 1))
    out = torch.cat([first, second, asm.finish()]).flatten()
    assert out.shape == (6,)
    assert torch.allclose(out, torch.tensor([0, 0, 1 / 3, 2 / 3, 1, 1]))
    assert torch.equal(crossfade(torch.zeros(1, 2), torch.ones(1, 2)), torch.full((1, 2), 0.5))
    with pytest.raises(ValueError, match="not held"):
        asm.window(0, 2)  # handed out and dropped: a song is never held whole


# -- colour ----------------------------------------------------------------------------------------


def test_match_color_moves_clip_statistics_to_the_reference():
    gen = torch.manual_seed(3)
    reference = torch.rand(3, 32, 32, generator=gen) * 0.5 + 0.25
    tint = torch.tensor([0.6, 0.2, 0.1]).view(1, 3, 1, 1)
    frames = (torch.rand(4, 3, 32, 32, generator=gen) * 0.3 + tint).clamp(0, 1)
    matched = match_color(frames, reference)
    ref_mean = reference.mean(dim=(1, 2))
    assert (frames.mean(dim=(0, 2, 3)) - ref_mean).abs().max() > 0.1
    assert (matched.mean(dim=(0, 2, 3)) - ref_mean).abs().max() < 0.02
    assert (matched.std(dim=(0, 2, 3)) - reference.std(dim=(1, 2))).abs().max() < 0.02
    assert matched.min() >= 0 and matched.max() <= 1


# -- audio windows ---------------------------------------------------------------------------------


def test_audio_tokens_slice_holds_the_last_window_past_the_end():
    from singer_core.pipeline import AudioTokens

    audio = AudioTokens(torch.arange(3.0).view(3, 1, 1, 1).expand(3, 5, 1, 1), audio_length=3)
    assert audio.frames == 3
    assert audio.window_slice(1, 5)[:, 0].flatten().tolist() == [1.0, 2.0, 2.0, 2.0]
