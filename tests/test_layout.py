"""One table of model folders and file types for the command line and the ComfyUI nodes."""

from __future__ import annotations

import pytest

from nodes import model_paths
from singer_core import layout
from singer_core.pipeline.model_files import locate_models


def test_the_nodes_register_the_library_folders():
    assert model_paths.SINGER is layout.SINGER and model_paths.WAV2VEC2 is layout.WAV2VEC2
    assert model_paths.INSIGHTFACE is layout.INSIGHTFACE and model_paths.AUDIO_SEPARATOR is layout.AUDIO_SEPARATOR


def _models_root(tmp_path, checkpoint: str):
    (tmp_path / "singer").mkdir()
    (tmp_path / "singer" / checkpoint).write_bytes(b"x")
    (tmp_path / "vae" / "sd-vae-ft-mse").mkdir(parents=True)
    (tmp_path / "vae" / "sd-vae-ft-mse" / "config.json").write_text("{}")
    (tmp_path / "wav2vec2").mkdir()
    (tmp_path / "wav2vec2" / "model.safetensors").write_bytes(b"x")
    faces = tmp_path / layout.INSIGHTFACE.name / layout.FACE_MODELS_SUBDIR
    faces.mkdir(parents=True)
    for name in layout.ANTELOPE_FILES:
        (faces / name).write_bytes(b"x")
    return tmp_path


@pytest.mark.parametrize("suffix", sorted(layout.CHECKPOINT_SUFFIXES))
def test_the_command_line_finds_every_checkpoint_type_comfyui_lists(tmp_path, suffix):
    files = locate_models(_models_root(tmp_path, f"net{suffix}"))
    assert files.checkpoint.name == f"net{suffix}"


def test_other_files_are_not_checkpoints(tmp_path):
    root = _models_root(tmp_path, "net.safetensors")
    (root / "singer" / "notes.txt").write_text("not a checkpoint")
    assert locate_models(root).checkpoint.name == "net.safetensors"
