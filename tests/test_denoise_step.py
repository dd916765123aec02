"""One official denoising step on the tiny Net (fixtures README section 6; docs/official_quirks.md 1-5, 8-10)."""

from __future__ import annotations

import pytest
import torch

from singer_core.conformance.common import MODULE_ATOL, UNET_ATOL
from singer_core.errors import InputError
from singer_core.models.conditions import MaskPyramid
from singer_core.net import SingerNet
from singer_core.sampling import ClipInputs, clip_conditions, guide, official_scheduler, predict_noise
from tests.conftest import assert_close, fixture_io, fixture_json, fixture_net

TRACED_BLOCKS = ["time_embedding", "mid_block", "hidden_spectral_weighting"] + [
    f"{kind}_blocks.{i}" for kind in ("down", "up") for i in range(4)
]


@pytest.fixture(scope="module")
def net() -> SingerNet:
    return fixture_net()


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return fixture_io("denoise_step")


@pytest.fixture(scope="module")
def step(net, io):
    """Runs the step once, recording the traced block outputs."""
    with torch.no_grad():
        audio_tokens = net.audioproj(io["input.audio_windows"])
    masks = MaskPyramid(*[[io[f"input.{kind}_mask.{i}"] for i in range(4)] for kind in ("full", "face", "lip")])
    clip = ClipInputs(
        ref_latents=io["input.ref_image_latents"],
        face_embedding=io["input.face_emb"],
        face_region=io["input.face_region"],
        masks=masks,
        audio_tokens=audio_tokens,
        noise=io["input.latents"],
    )
    conditions = clip_conditions(net, clip, io["input.latents"], io["input.motion_scale"].tolist())
    traces, hooks = {}, []
    for name in TRACED_BLOCKS:
        def record(module, args, out, name=name):
            traces[name] = out[0] if isinstance(out, tuple) else out
        hooks.append(net.denoising_unet.get_submodule(name).register_forward_hook(record))
    try:
        noise_pred = predict_noise(net, io["input.latents"], io["input.timestep"], conditions)
    finally:
        for hook in hooks:
            hook.remove()
    return audio_tokens, conditions, noise_pred, traces


def test_conditions_match_official(step, io) -> None:
    audio_tokens, conditions, _, _ = step
    assert_close(audio_tokens, io["step.audio_proj_out"], MODULE_ATOL, "audio_proj_out")
    assert_close(conditions.image_tokens, io["step.encoder_hidden_states"], MODULE_ATOL, "encoder_hidden_states")
    assert_close(conditions.audio_tokens, io["step.audio_embedding"], MODULE_ATOL, "audio_embedding (MSM)")
    face = conditions.face_features.expand_as(io["step.face_locator_out"])
    assert_close(face, io["step.face_locator_out"], MODULE_ATOL, "face_locator_out")


def test_reference_bank_matches_official_fp16_bank(step, io) -> None:
    """Every entry equals the official float16 bank up to one float16 ulp (rare rounding flips of
    float32 values that differ at the 1e-6 level; near zero that can be a few ulps, hence the 1e-5)."""
    bank = step[1].bank
    prefix = "trace.reference_bank_fp16."
    paths = [k.removeprefix(prefix) for k in io if k.startswith(prefix)]
    assert sorted(paths) == sorted(bank.features)
    flipped = total = 0
    for path in paths:
        expected = io[prefix + path].float()
        actual = bank.features[path].flatten(0, 1).float()
        diff = (actual - expected).abs()
        allowed = torch.finfo(torch.float16).eps * expected.abs() + MODULE_ATOL
        assert (diff <= allowed).all(), f"{path}: difference above one float16 ulp, max {diff.max().item():.3e}"
        flipped, total = flipped + int((diff > 0).sum()), total + diff.numel()
    assert flipped / total < 0.02


def test_block_traces_match_official(step, io) -> None:
    traces = step[3]
    for name in TRACED_BLOCKS:
        expected = io[f"trace.denoising_unet.{name}"]
        actual = traces[name]
        if actual.dim() == 4 and expected.dim() == 5:  # frames folded into the batch
            actual = actual.unflatten(0, (expected.shape[0], expected.shape[2])).transpose(1, 2)
        assert_close(actual, expected, UNET_ATOL, f"denoising_unet.{name}")


def test_noise_pred_guidance_and_scheduler_step(step, io) -> None:
    noise_pred = step[2]
    assert_close(noise_pred, io["output.noise_pred"], UNET_ATOL, "noise_pred")
    config = fixture_json("denoise_step")
    guided = guide(noise_pred, config["guidance_scale"])
    assert_close(guided, io["output.noise_pred_guided"], UNET_ATOL, "noise_pred_guided")
    scheduler = official_scheduler()
    scheduler.set_timesteps(config["scheduler_num_inference_steps_for_step"])
    prev = scheduler.step(guided, io["input.timestep"], io["input.latents"], eta=0.0).prev_sample
    assert_close(prev, io["output.prev_latents"], UNET_ATOL, "prev_latents")


def test_eval_branch_is_not_what_we_compute(step, io) -> None:
    """Guards quirk 1 of docs/official_quirks.md: the official path is the train-mode branch, far from the eval
    branch."""
    gap = (step[2] - io["alt.noise_pred_eval_mode_branch"]).abs().max().item()
    assert gap > 0.1


def test_without_cfg_conditional_half_only(net, io, step) -> None:
    """Official no-CFG path: the write pass conditions every row on the face tokens, one half is read."""
    _, cfg_conditions, _, _ = step
    tokens = cfg_conditions.image_tokens
    bank = net.reference_unet.write_bank(io["input.ref_image_latents"], None, tokens[1:])
    assert bank.halves == 1
    for path, rows in bank.features.items():
        cfg_rows = cfg_conditions.bank.features[path][1]  # [ref: c, motion 1: u, motion 2: c] with 2 motion frames
        assert_close(rows[0, 0::2], cfg_rows[0::2], 2e-3, f"{path} rows conditioned on the face tokens")
    conditions = type(cfg_conditions)(
        bank, tokens[1:], cfg_conditions.audio_tokens[1:], cfg_conditions.face_features, cfg_conditions.masks
    )
    prediction = predict_noise(net, io["input.latents"], io["input.timestep"], conditions)
    assert prediction.shape == (1, *io["input.latents"].shape[1:])
    assert torch.isfinite(prediction).all()
    assert torch.equal(guide(prediction, 3.5), prediction)


def test_mask_of_wrong_size_is_named(net, io, step) -> None:
    conditions = step[1]
    bad = MaskPyramid(conditions.masks.full, conditions.masks.face[:2] + [conditions.masks.face[3]] * 2,
                      conditions.masks.lip)
    wrong = type(conditions)(conditions.bank, conditions.image_tokens, conditions.audio_tokens,
                             conditions.face_features, bad)
    with pytest.raises(InputError, match="face mask at level 2"):
        predict_noise(net, io["input.latents"], io["input.timestep"], wrong)
