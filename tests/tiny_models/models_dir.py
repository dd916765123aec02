"""Tiny models folders: the ComfyUI layout for the host tests and the Manager-install check
(tools/check_manager_install.py), and the command line's ``--models`` layout for the CLI, batch and benchmarks."""

from __future__ import annotations

from pathlib import Path


def write_tiny_models(models_dir: Path) -> dict:
    """Tiny random SINGER models in the real file formats, in a ComfyUI ``models/`` layout, where the
    workflow's loaders look for them. Returns the values to put in the loaders' combos. The VAE is ComfyUI's
    ``taesd`` (see ``tests/tiny_models/comfy_vae.py`` for why not a small AutoencoderKL)."""
    from tests.tiny_models.comfy_vae import write_taesd
    from tests.tiny_models.face_onnx import write_antelopev2
    from tests.tiny_models.net import write_tiny_singer_checkpoint
    from tests.tiny_models.separator import write_tiny_mdx_onnx
    from tests.tiny_models.wav2vec import write_tiny_wav2vec_folder

    write_tiny_singer_checkpoint(models_dir / "singer" / "tiny_singer.safetensors")
    write_tiny_wav2vec_folder(models_dir / "wav2vec2" / "tiny_wav2vec")
    write_antelopev2(models_dir / "insightface" / "models" / "antelopev2")
    write_tiny_mdx_onnx(models_dir / "audio_separator" / "Kim_Vocal_2.onnx", dim_t=32)
    write_taesd(models_dir / "vae_approx")
    return {
        "ckpt_name": "tiny_singer.safetensors",
        "wav2vec_name": "tiny_wav2vec/model.safetensors",
        "model_pack": "antelopev2",
        "model_name": "Kim_Vocal_2.onnx",
        "vae_name": "taesd",
    }


def write_tiny_cli_models(root: Path) -> Path:
    """The test suite's tiny models in the command line's ``--models`` layout (``python -m singer_core generate``)."""
    from tests.tiny_models.face_onnx import write_antelopev2
    from tests.tiny_models.net import write_tiny_singer_checkpoint
    from tests.tiny_models.vae import write_diffusers_folder
    from tests.tiny_models.wav2vec import write_tiny_wav2vec_folder

    write_tiny_singer_checkpoint(root / "singer" / "net.safetensors")
    write_diffusers_folder(root / "vae" / "sd-vae-tiny")
    write_tiny_wav2vec_folder(root / "wav2vec2" / "wav2vec2-tiny")
    write_antelopev2(root / "insightface" / "models" / "antelopev2")
    return root
