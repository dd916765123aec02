"""Small SINGER modules against the official fixtures (atol 1e-5), plus their any-size behaviour."""

from __future__ import annotations

import json

import pytest
import torch

from singer_core.config import MsmConfig, SfmConfig
from singer_core.errors import InputError
from singer_core.models.audio_proj import AudioProjModel
from singer_core.models.face_locator import FaceLocator
from singer_core.models.image_proj import ImageProjModel
from singer_core.models.msm import MultiScaleSpectralModule
from singer_core.models.sfm import SpectralFilterModule
from singer_core.models.wavelets import HaarDWT, HaarIDWT
from tests.conftest import assert_close, fixture_io, fixture_json, fixture_weights

ATOL = 1e-5
# Same values by another call path: sub-band scales (|x| <= 2 here) in inference mode against a fresh module in
# grad mode. torch.matmul runs the fc's first product as a batched GEMM (aten::bmm) in inference mode and folds
# it into one GEMM (aten::mm) when the weight takes gradients (seen with the profiler); CPU kernels may round
# the two differently (1.2e-7, one ulp, on an Intel Xeon with AMX). A stale cache is off by ~1 (the sign flip).
OTHER_PATH_ATOL = 1e-6
BANDS = ("LL", "LH", "HL", "HH")


def _loaded(module: torch.nn.Module, name: str) -> torch.nn.Module:
    module.load_state_dict(fixture_weights(name), strict=True)
    return module.eval()


def _msm() -> MultiScaleSpectralModule:
    spec = fixture_json("msm")["constructor"]
    config = MsmConfig.from_official_args(spec["positional_args"], chunk=spec["chunk"], reduction=spec["reduction"])
    return _loaded(MultiScaleSpectralModule(config), "msm")


def _sfm() -> SpectralFilterModule:
    spec = fixture_json("sfm")["constructor"]
    config = SfmConfig(channels=spec["cross_attention_dim"], heads=spec["attention_head_dim"], chunks=spec["chunks"])
    return _loaded(SpectralFilterModule(config), "sfm")


# --- wavelets -------------------------------------------------------------------------------------


def test_dwt_matches_official_bands():
    io = fixture_io("dwt")
    bands = HaarDWT()(io["input.x"])
    for name, band in zip(BANDS, bands, strict=True):
        assert_close(band, io[f"output.{name}"], ATOL, f"DWT {name}")


def test_idwt_matches_official():
    io = fixture_io("dwt")
    out = HaarIDWT()(*(io[f"idwt.input.{name}"] for name in BANDS))
    assert_close(out, io["idwt.output"], ATOL, "IDWT")


def test_dwt_round_trip_and_no_state_dict_keys():
    x = torch.randn(1, 2, 6, 10)
    assert_close(HaarIDWT()(*HaarDWT()(x)), x, 1e-6, "IDWT(DWT(x))")
    assert HaarDWT().state_dict() == {} and HaarIDWT().state_dict() == {}


def test_dwt_odd_size_is_a_clear_error():
    with pytest.raises(InputError, match="even height and width"):
        HaarDWT()(torch.randn(1, 1, 5, 4))


# --- MSM ------------------------------------------------------------------------------------------


def test_msm_matches_official():
    io = fixture_io("msm")
    msm = _msm()
    with torch.no_grad():
        out = msm(io["input.audio_embs"], io["input.latents"])
        scales = msm.subband_scales(io["input.latents"])
    assert_close(scales, io["intermediate.subband_weights"], ATOL, "MSM sub-band scales")
    assert_close(out, io["output"], ATOL, "MSM output")
    weight_sum = msm.dct_layer.weight_sum(16, 16)
    assert_close(weight_sum, io["derived.dct_weight_sum_over_batch_and_frames"], ATOL, "MSM weight sum")


def test_msm_cache_follows_buffer_changes():
    io = fixture_io("msm")
    msm = _msm()
    before = msm.subband_scales(io["input.latents"]).detach().clone()
    msm.dct_layer.weight.mul_(-1.0)
    after = msm.subband_scales(io["input.latents"]).detach()
    assert not torch.allclose(before, after), "cached weight sum was not refreshed after an in-place change"
    msm.load_state_dict(fixture_weights("msm"))
    assert_close(msm.subband_scales(io["input.latents"]), before, 0.0, "scales after reloading")


def test_msm_cache_refreshed_by_loads_in_inference_mode():
    io = fixture_io("msm")
    weights = fixture_weights("msm")
    msm = _msm()
    with torch.inference_mode():  # as in ComfyUI: the buffer becomes an inference tensor (no version counter)
        msm.load_state_dict({k: v.clone() for k, v in weights.items()}, assign=True)
        assert msm.dct_layer.weight.is_inference()
        expected = msm.subband_scales(io["input.latents"])
        negated = dict(weights, **{"dct_layer.weight": -weights["dct_layer.weight"]})
        msm.load_state_dict(negated)  # in-place copy: same storage, no version counter
        flipped = msm.subband_scales(io["input.latents"])
    args = fixture_json("msm")["constructor"]["positional_args"]
    fresh = MultiScaleSpectralModule(MsmConfig.from_official_args(args))
    fresh.load_state_dict(negated)
    assert not torch.allclose(flipped, expected)
    assert_close(flipped, fresh.subband_scales(io["input.latents"]), OTHER_PATH_ATOL,
                 "scales after loading a negated buffer")


def test_msm_writes_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    io = fixture_io("msm")
    _msm()(io["input.audio_embs"], io["input.latents"])
    assert list(tmp_path.iterdir()) == []


def test_msm_other_latent_size_keeps_noise_statistics():
    msm = _msm()
    native = msm.dct_layer.weight_sum(16, 16)
    for height, width in ((32, 32), (24, 40), (8, 8)):
        resized = msm.dct_layer.weight_sum(height, width)
        assert resized.shape == (4, height, width)
        native_energy = native.unflatten(1, (4, -1)).square().sum((2, 3))
        resized_energy = resized.unflatten(1, (4, -1)).square().sum((2, 3))
        tolerance = 1e-3 * native_energy.max().item()
        assert_close(resized_energy, native_energy, tolerance, f"quarter energies {height}x{width}")
    audio = torch.randn(1, 6, 32, 40)
    out = msm(audio, torch.randn(1, 4, 6, 32, 24))
    assert out.shape == audio.shape and torch.isfinite(out).all()


def test_msm_odd_frame_count_pads_and_crops():
    msm = _msm()
    audio = torch.randn(1, 5, 32, 40)
    latents = torch.randn(1, 4, 5, 16, 16)
    out = msm(audio, latents)
    assert out.shape == audio.shape and torch.isfinite(out).all()
    # With equal sub-band scales the Haar filter is a pure gain, so the crop must give back scale * input.
    with torch.no_grad():
        msm.fc[2].weight.zero_()  # sigmoid(0) = 0.5 per frame -> every scale = 0.5 * frames
    assert_close(msm(audio, latents), audio * 0.5 * 5, 1e-4, "odd-frame MSM with uniform scales")


def test_msm_rejects_bad_latents():
    msm = _msm()
    with pytest.raises(InputError, match="latents must be"):
        msm(torch.randn(1, 6, 32, 40), torch.randn(1, 3, 6, 16, 16))
    with pytest.raises(InputError, match="multiple of 4"):
        msm(torch.randn(1, 6, 32, 40), torch.randn(1, 4, 6, 18, 16))


# --- SFM ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["square", "rect"])
def test_sfm_matches_official(case):
    io = fixture_io("sfm")
    with torch.no_grad():
        out = _sfm()(io[f"input.{case}"])
    assert_close(out, io[f"output.{case}"], ATOL, f"SFM {case}")


def test_sfm_gate_and_weight_sum_match_official():
    io = fixture_io("sfm")
    sfm = _sfm()
    x = io["input.square"]
    per_frame = x.transpose(1, 2).reshape(-1, *x.shape[1:2], *x.shape[3:])
    assert_close(sfm.width_gate(per_frame), io["intermediate.square.fc_gate"], ATOL, "SFM gate")
    assert_close(sfm.weight.sum((1, 3, 4)), io["derived.weight_sum_over_m_s_t"], ATOL, "SFM weight sum")


@pytest.mark.parametrize("shape", [(1, 32, 2, 16, 16), (2, 32, 3, 6, 12), (1, 32, 2, 9, 7), (1, 32, 1, 4, 4)])
def test_sfm_other_sizes_give_finite_same_shape(shape):
    x = torch.randn(*shape)
    out = _sfm()(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_sfm_wide_input_gate_is_resampled_native_gate():
    """A width-16 copy of a native map (columns doubled) gets the native gate, linearly upsampled."""
    sfm = _sfm()
    narrow = torch.randn(3, 32, 4, 8)
    gate_wide = sfm.width_gate(narrow.repeat_interleave(2, dim=-1))
    expected = torch.nn.functional.interpolate(
        sfm.width_gate(narrow).reshape(-1, 1, 8), size=16, mode="linear", align_corners=False
    ).reshape(3, 32, 4, 16)
    assert_close(gate_wide, expected, 1e-6, "resampled gate")


def test_sfm_rejects_wrong_channels():
    with pytest.raises(InputError, match="expected"):
        _sfm()(torch.randn(1, 16, 2, 8, 8))


# --- projections and face locator -----------------------------------------------------------------


def test_audio_proj_matches_official():
    spec = fixture_json("small_modules")["audio_proj"]
    io = fixture_io("audio_proj")
    model = _loaded(AudioProjModel(**spec["kwargs"]), "audio_proj")
    with torch.no_grad():
        assert_close(model(io["input"]), io["output"], ATOL, "audio_proj")
    with pytest.raises(InputError, match="audio windows"):
        model(torch.randn(1, 4, 5, 4, 32))


@pytest.mark.parametrize("which", ["output", "output_for_zeros_input"])
def test_image_proj_matches_official(which):
    spec = fixture_json("small_modules")["image_proj"]
    io = fixture_io("image_proj")
    model = _loaded(ImageProjModel(**spec["kwargs"]), "image_proj")
    face_emb = io["input"] if which == "output" else torch.zeros_like(io["input"])
    with torch.no_grad():
        assert_close(model(face_emb), io[which], ATOL, f"image_proj {which}")


def test_face_locator_matches_official():
    spec = fixture_json("small_modules")["face_locator"]
    io = fixture_io("face_locator")
    kwargs = dict(spec["kwargs"], block_out_channels=tuple(spec["kwargs"]["block_out_channels"]))
    model = _loaded(FaceLocator(**kwargs), "face_locator")
    with torch.no_grad():
        assert_close(model(io["input"]), io["output"], ATOL, "face_locator")


def test_msm_sfm_configs_are_typed_and_keep_the_stored_form():
    """Typed settings; checkpoints keep the official positional list in their metadata (old files still load)."""
    from singer_core.config import NetConfig

    full = NetConfig.singer()
    assert full.msm == MsmConfig(1, 14, 4, 64, 64) and full.msm.official_args == [1, 14, 4, 64, 64]
    assert json.loads(full.to_json())["msm"] == [1, 14, 4, 64, 64]
    assert NetConfig.from_json(full.to_json()) == full
    assert NetConfig(msm=[2, 6, 4, 64, 64]).msm == MsmConfig(batchsize=2, nframes=6)
    assert NetConfig(msm={"nframes": 16}).msm.nframes == 16
    odd = MsmConfig(channel=8, chunk=8)
    assert NetConfig.from_json(NetConfig(msm=odd).to_json()).msm == odd
    with pytest.raises(ValueError, match="chunk"):
        MsmConfig(chunk=2)
    with pytest.raises(ValueError, match="positive"):
        MsmConfig(dct_h=0)
    assert SfmConfig.for_unet([320, 640, 1280, 1280], [8, 8, 8, 8]) == SfmConfig(channels=1280, heads=8)
    with pytest.raises(ValueError, match="one per Haar sub-band"):
        SpectralFilterModule(SfmConfig(channels=4, heads=8, chunks=3))


def test_subband_order_is_the_official_one():
    """One home for the band order and the pytorch_wavelets mapping: the closed forms of fixtures README 1."""
    from singer_core.models.wavelets import PYTORCH_WAVELETS_HIGH_INDEX, SUBBANDS

    assert SUBBANDS == ("LL", "LH", "HL", "HH") and PYTORCH_WAVELETS_HIGH_INDEX == {"HL": 0, "LH": 1, "HH": 2}
    x = torch.tensor([[[[1.0, 2.0], [3.0, 5.0]]]])  # a, b / c, d
    a, b, c, d = 1.0, 2.0, 3.0, 5.0
    expected = {"LL": (a + b + c + d) / 2, "LH": (a - b + c - d) / 2, "HL": (a + b - c - d) / 2,
                "HH": (a - b - c + d) / 2}
    for name, band in zip(SUBBANDS, HaarDWT()(x), strict=True):
        assert band.item() == pytest.approx(expected[name]), name
