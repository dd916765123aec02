"""Checkpoint reading, kind detection, key reports and the safetensors converter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from singer_core.checkpoint import (
    CONFIG_METADATA_KEY,
    compare_keys,
    detect_kind,
    load_net,
    parameters_on_meta,
    read_checkpoint,
    unwrap_state_dict,
)
from singer_core.config import MsmConfig, NetConfig, SfmConfig
from singer_core.convert import main as convert_main
from singer_core.errors import CheckpointError, ModelFileMissingError
from singer_core.models.sfm import SpectralFilterModule
from tests.conftest import FIXTURES, fixture_io, fixture_json, fixture_weights
from tests.tiny_models.net import tiny_net_config, tiny_net_state_dict, write_tiny_singer_checkpoint

REPO = Path(__file__).resolve().parent.parent
SINGER_ONLY = {
    "audioembed.dct_layer.weight",
    "audioembed.fc.0.weight",
    "audioembed.fc.2.weight",
    "denoising_unet.hidden_spectral_weighting.weight",
    "denoising_unet.hidden_spectral_weighting.fc.0.weight",
    "denoising_unet.hidden_spectral_weighting.fc.2.weight",
}


class PickledObject:
    """A class a weights-only load must refuse to unpickle."""


def _manifest_shapes(name: str) -> dict[str, tuple[int, ...]]:
    return {key: tuple(shape) for key, shape, _ in fixture_json(name)["keys"]}


def _convert_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "singer_core.convert", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def _convert(capsys, *args: str) -> subprocess.CompletedProcess:
    """The converter's ``main`` in-process (the CLI itself is exercised once, by subprocess)."""
    returncode = convert_main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, returncode, captured.out, captured.err)


# --- key analysis -----------------------------------------------------------------------------------


def test_kind_detected_from_full_size_manifests():
    singer, hallo = _manifest_shapes("singer_net_manifest"), _manifest_shapes("hallo_net_manifest")
    assert set(singer) - set(hallo) == SINGER_ONLY and set(hallo) <= set(singer)
    assert detect_kind(singer) == "singer"
    assert detect_kind(hallo) == "hallo"


@pytest.mark.parametrize(
    ("keys", "looks_like"),
    [
        (["encoder.conv_in.weight", "decoder.conv_in.weight", "quant_conv.weight"], "VAE"),
        (["model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.encoder.conv_in.weight"], "Stable Diff"),
        (["conv_in.weight", "down_blocks.0.resnets.0.conv1.weight", "time_embedding.linear_1.weight"], "UNet"),
        (["feature_extractor.conv_layers.0.conv.weight", "encoder.layers.0.attention.k_proj.weight"], "wav2vec"),
        (["down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight"], "motion-module"),
        (["down_blocks.0.resnets.0.conv1.weight", "down_blocks.0.motion_modules.0.w"], "separate reference"),
        (["face_locator.conv_in.weight", "imageproj.proj.weight"], "unrecognised"),
    ],
)
def test_foreign_key_sets_are_named(keys, looks_like):
    with pytest.raises(CheckpointError, match=looks_like) as info:
        detect_kind(keys, source="model.bin")
    assert "net.pth" in str(info.value) and "model.bin" in str(info.value)


def test_key_report_lists_counts_and_examples():
    expected = _manifest_shapes("singer_net_manifest")
    found = dict(expected)
    for key in sorted(SINGER_ONLY):
        del found[key]
    found["denoising_unet.extra.weight"] = (1,)
    found["imageproj.proj.weight"] = (3072, 1024)
    report = compare_keys(expected, found)
    assert not report.ok
    assert (len(report.missing), len(report.unexpected), len(report.mismatched)) == (6, 1, 1)
    message = report.message("net.pth", "SINGER net")
    assert "6 missing keys" in message and "audioembed.dct_layer.weight" in message
    assert "1 unexpected keys (e.g. denoising_unet.extra.weight)" in message
    assert "imageproj.proj.weight [3072, 512] vs [3072, 1024]" in message
    assert compare_keys(expected, expected).ok


def test_key_report_shortens_long_lists():
    expected = _manifest_shapes("hallo_net_manifest")
    message = compare_keys(expected, {}).message("x.pth", "Hallo net")
    assert f"{len(expected)} missing keys" in message and message.count("reference_unet.") == 5


def test_unwraps_common_containers():
    state_dict = {"a.weight": torch.ones(1)}
    for wrapped in ({"state_dict": state_dict, "epoch": 3}, {"module": state_dict}, {"module.a.weight": torch.ones(1)}):
        assert list(unwrap_state_dict(wrapped)) == ["a.weight"]
    with pytest.raises(CheckpointError, match="not a dict of tensors"):
        unwrap_state_dict([torch.ones(1)], "list.pth")


# --- reading files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["singer", "hallo"])
@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_read_tiny_checkpoints(tmp_path, kind, fmt):
    path = write_tiny_singer_checkpoint(tmp_path / f"net.{fmt}", kind=kind, fmt=fmt)
    config = tiny_net_config(kind) if fmt == "pth" else None
    checkpoint = read_checkpoint(path, config)
    assert checkpoint.kind == kind
    assert checkpoint.config == tiny_net_config(kind)
    expected = tiny_net_state_dict(kind)
    assert set(checkpoint.state_dict) == set(expected)
    assert all(torch.equal(checkpoint.state_dict[k], v) for k, v in expected.items())


def test_safetensors_without_metadata_gets_full_size_config(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file(tiny_net_state_dict("hallo"), str(path))
    assert read_checkpoint(path).config == NetConfig.hallo()


def test_wrong_kind_file_is_rejected_with_a_clear_message(tmp_path):
    vae = tmp_path / "vae.pth"
    torch.save(fixture_weights("vae_tiny"), vae)
    with pytest.raises(CheckpointError, match=r"vae\.pth is not a SINGER or Hallo net checkpoint.*VAE.*net\.pth"):
        read_checkpoint(vae)
    wav2vec = tmp_path / "wav2vec.safetensors"
    save_file(fixture_weights("wav2vec_tiny"), str(wav2vec))
    with pytest.raises(CheckpointError, match="wav2vec"):
        read_checkpoint(wav2vec)


def test_pth_is_loaded_weights_only(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": PickledObject()}, path)  # arbitrary classes are refused by weights_only
    with pytest.raises(CheckpointError, match="weights_only"):
        read_checkpoint(path)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(ModelFileMissingError, match="not found"):
        read_checkpoint(tmp_path / "absent.pth")
    garbage = tmp_path / "net.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable"):
        read_checkpoint(garbage)


# --- building the net and converting (needs singer_core.net) ----------------------------------------


def _assert_net_holds(net: torch.nn.Module, state_dict: dict[str, torch.Tensor], dtype: torch.dtype) -> None:
    loaded = net.state_dict()
    assert set(loaded) == set(state_dict)
    for key, value in state_dict.items():
        assert loaded[key].dtype == dtype, key
        assert torch.equal(loaded[key], value.to(dtype)), key


@pytest.mark.parametrize("kind", ["singer", "hallo"])
def test_pth_to_safetensors_round_trip(tmp_path, capsys, kind):
    pth = write_tiny_singer_checkpoint(tmp_path / "net.pth", kind=kind, fmt="pth")
    out = tmp_path / "converted" / "net.safetensors"
    args = (str(pth), str(out), "--config", str(FIXTURES / "net_tiny.json"))
    result = _convert_cli(*args) if kind == "singer" else _convert(capsys, *args)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout and f"{kind} net" in result.stdout
    with safe_open(str(out), framework="pt") as handle:
        stored = NetConfig.from_json(handle.metadata()[CONFIG_METADATA_KEY])
    assert stored == tiny_net_config(kind)
    _assert_net_holds(load_net(out), tiny_net_state_dict(kind), torch.float32)


def test_converter_dtype_and_load_dtype(tmp_path, capsys):
    source = write_tiny_singer_checkpoint(tmp_path / "net.safetensors")
    out = tmp_path / "net_fp16.safetensors"
    result = _convert(capsys, str(source), str(out), "--dtype", "fp16")
    assert result.returncode == 0, result.stderr
    assert all(t.dtype == torch.float16 for t in load_file(str(out)).values())
    half = {k: v.half() for k, v in tiny_net_state_dict().items()}
    _assert_net_holds(load_net(out), half, torch.float16)
    _assert_net_holds(load_net(out, dtype=torch.float32), {k: v.float() for k, v in half.items()}, torch.float32)


def test_converter_refuses_wrong_architecture(tmp_path, capsys):
    pth = write_tiny_singer_checkpoint(tmp_path / "net.pth", fmt="pth")
    out = tmp_path / "net.safetensors"
    result = _convert(capsys, str(pth), str(out))  # no --config: full-size architecture assumed
    assert result.returncode == 1 and not out.exists()
    assert "does not match the SINGER net architecture" in result.stderr and "--config" in result.stderr


def test_load_reports_missing_keys(tmp_path):
    state_dict = tiny_net_state_dict()
    del state_dict["audioproj.norm.weight"]
    path = tmp_path / "net.pth"
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError, match=r"1 missing keys \(e\.g\. audioproj\.norm\.weight\)"):
        load_net(path, config=tiny_net_config())


def test_msm_buffer_of_any_batch_and_frame_size_loads(tmp_path):
    """A training-shaped MSM buffer (quirk 6 of docs/official_quirks.md) loads; only its sum over batch and frames
    matters."""
    state_dict = tiny_net_state_dict()
    native = state_dict["audioembed.dct_layer.weight"]  # [1, 4, 3, 32, 32]
    spread = native.sum((0, 2), keepdim=True).expand(2, -1, 5, -1, -1) / 10
    path = tmp_path / "net.pth"
    torch.save(dict(state_dict, **{"audioembed.dct_layer.weight": spread.contiguous()}), path)
    net = load_net(path, config=tiny_net_config())
    assert net.config.msm == MsmConfig(batchsize=2, nframes=5, channel=4, dct_h=32, dct_w=32)
    audio, latents = torch.randn(1, 4, 32, 40), torch.randn(1, 4, 4, 32, 32)
    reference = load_net(write_tiny_singer_checkpoint(tmp_path / "ref.safetensors"))
    expected = reference.audioembed(audio, latents)
    assert (net.audioembed(audio, latents) - expected).abs().max().item() <= 1e-5


def test_load_wrapped_official_layout(tmp_path):
    path = tmp_path / "net.pth"
    torch.save({"module": tiny_net_state_dict()}, path)
    net = load_net(path, config=tiny_net_config())
    _assert_net_holds(net, tiny_net_state_dict(), torch.float32)
    assert not any(p.requires_grad for p in net.parameters())


def test_config_json_is_what_the_converter_reads():
    config = NetConfig.from_file(FIXTURES / "net_tiny.json")
    assert json.loads(config.to_json())["msm"] == [1, 3, 4, 32, 32]


def test_parameters_on_meta_then_assign_load_keeps_buffers_real():
    with parameters_on_meta():
        sfm = SpectralFilterModule(SfmConfig(channels=32, heads=8))
    assert all(p.is_meta for p in sfm.parameters())
    assert not any(b.is_meta for b in sfm.buffers())  # the non-persistent Haar filters
    sfm.load_state_dict(fixture_weights("sfm"), strict=True, assign=True)
    io = fixture_io("sfm")
    error = (sfm(io["input.square"]) - io["output.square"]).abs().max().item()
    assert error <= 1e-5
    assert torch.nn.Linear(2, 2).weight.device.type == "cpu"  # the patch is undone
