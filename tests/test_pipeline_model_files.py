"""Finding the models in a ComfyUI-style folder and loading the VAE from the layouts users have."""

from __future__ import annotations

import pytest
import torch

from singer_core.errors import CheckpointError, ModelFileMissingError
from singer_core.pipeline.codec import DiffusersVAECodec
from singer_core.pipeline.model_files import ANTELOPE_FILES, locate_models
from singer_core.pipeline.vae_loading import load_vae
from tests.tiny_models.vae import tiny_vae, write_diffusers_folder, write_ldm_single_file, write_single_file


def make_layout(root, checkpoints=("net.pth",), vae_entries=("sd-vae-ft-mse",)):
    for name in checkpoints:
        (root / "singer").mkdir(parents=True, exist_ok=True)
        (root / "singer" / name).write_bytes(b"x")
    for name in vae_entries:
        (root / "vae" / name).mkdir(parents=True)
        (root / "vae" / name / "config.json").write_text("{}")
    (root / "wav2vec2" / "wav2vec2-base-960h").mkdir(parents=True)
    (root / "wav2vec2" / "wav2vec2-base-960h" / "config.json").write_text("{}")
    face = root / "insightface" / "models" / "antelopev2"
    face.mkdir(parents=True)
    for name in ANTELOPE_FILES:
        (face / name).write_bytes(b"x")
    return root


def test_locate_models_resolves_every_entry(tmp_path):
    files = locate_models(make_layout(tmp_path))
    assert files.checkpoint == tmp_path / "singer" / "net.pth"
    assert files.vae == tmp_path / "vae" / "sd-vae-ft-mse"
    assert files.wav2vec == tmp_path / "wav2vec2" / "wav2vec2-base-960h"
    assert files.insightface == tmp_path / "insightface" / "models" / "antelopev2"
    assert files.separator is None


def test_several_checkpoints_need_a_name(tmp_path):
    make_layout(tmp_path, checkpoints=("net.pth", "hallo.safetensors"))
    with pytest.raises(ModelFileMissingError, match="Several SINGER checkpoint candidates"):
        locate_models(tmp_path)
    assert locate_models(tmp_path, checkpoint="hallo").checkpoint.name == "hallo.safetensors"
    with pytest.raises(ModelFileMissingError, match="'other' not found"):
        locate_models(tmp_path, checkpoint="other")


def test_missing_entries_say_where_they_belong(tmp_path):
    make_layout(tmp_path, checkpoints=())
    with pytest.raises(ModelFileMissingError, match="singer"):
        locate_models(tmp_path)
    with pytest.raises(ModelFileMissingError, match="Models folder not found"):
        locate_models(tmp_path / "nowhere")


def _decode(vae):
    latents = torch.randn(1, 4, 8, 8, generator=torch.manual_seed(0))
    return DiffusersVAECodec(vae).decode(latents)


@pytest.mark.parametrize("writer", ["folder", "single", "ldm"])
def test_vae_layouts_load_the_same_weights(tmp_path, writer):
    if writer == "folder":
        path = write_diffusers_folder(tmp_path / "vae")
    elif writer == "single":
        path = write_single_file(tmp_path / "vae.safetensors")
    else:
        path = write_ldm_single_file(tmp_path / "vae.safetensors")
    loaded = load_vae(path)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert torch.equal(_decode(loaded), _decode(tiny_vae()))


def test_vae_without_config_is_taken_as_sd_and_mismatch_is_explained(tmp_path):
    path = write_ldm_single_file(tmp_path / "vae.safetensors", with_config=False)
    with pytest.raises(CheckpointError, match="sd-vae-ft-mse"):
        load_vae(path)


def test_vae_loads_in_the_requested_dtype(tmp_path):
    vae = load_vae(write_diffusers_folder(tmp_path / "vae"), dtype=torch.bfloat16)
    assert next(vae.parameters()).dtype == torch.bfloat16
