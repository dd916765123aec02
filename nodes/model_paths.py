"""Where the SINGER model files live inside ComfyUI's ``models/`` folder.

One table says which folders the pack registers with ComfyUI's
``folder_paths`` and which files a SINGER workflow needs in them. Importing
this module needs no ComfyUI: ``tools/comfy_host.py serve`` uses the table to
tell what is still missing; ``register_model_folders()`` is called by the
extension inside ComfyUI.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from singer_core.layout import (
    ANTELOPE_FILES,
    AUDIO_SEPARATOR,
    FACE_MODELS_SUBDIR,
    INSIGHTFACE,
    SEPARATOR_FILE,
    SINGER,
    VAE,
    WAV2VEC2,
    ModelFolder,
)

__all__ = ["AUDIO_SEPARATOR", "FACE_MODELS_SUBDIR", "INSIGHTFACE", "SINGER", "VAE", "WAV2VEC2", "ModelFolder"]
PACK_FOLDERS = (SINGER, WAV2VEC2, INSIGHTFACE, AUDIO_SEPARATOR)
PACK_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RequiredModel:
    """A model file a SINGER workflow uses: any path matching one of ``patterns`` in ``folder`` will do."""

    folder: ModelFolder
    patterns: tuple[str, ...]
    suggested: str
    source: str
    optional: bool = False


REQUIRED_MODELS = (
    RequiredModel(
        SINGER,
        ("*.safetensors", "*.pth"),
        "singer_net.pth",
        "SINGER checkpoint net.pth from huggingface.co/yl2333/SINGER",
    ),
    RequiredModel(
        WAV2VEC2,
        ("*.safetensors", "*/config.json"),
        "wav2vec2-base-960h/ (the Hugging Face folder: config.json, model.safetensors, preprocessor_config.json)",
        "huggingface.co/facebook/wav2vec2-base-960h",
    ),
    *(
        RequiredModel(
            INSIGHTFACE,
            (f"{FACE_MODELS_SUBDIR}/{name}",),
            f"{FACE_MODELS_SUBDIR}/{name}",
            "insightface model zoo, antelopev2 pack",
        )
        for name in ANTELOPE_FILES
    ),
    RequiredModel(
        VAE,
        ("*.safetensors", "*/config.json"),
        "sd-vae-ft-mse/ (diffusers folder) or sd-vae-ft-mse.safetensors",
        "huggingface.co/stabilityai/sd-vae-ft-mse",
    ),
    RequiredModel(
        AUDIO_SEPARATOR,
        (SEPARATOR_FILE,),
        SEPARATOR_FILE,
        "huggingface.co/huangjackson/Kim_Vocal_2 (optional: separates the voice from the music)",
        optional=True,
    ),
)


def register_model_folders() -> None:
    """Register the pack's folders under ComfyUI's models dir (creates nothing on disk).

    A folder the user already configured (extra_model_paths.yaml) keeps its
    paths first (so it is also where *SINGER Download Models* writes); ours is
    added after them and our file types are merged in.
    """
    import folder_paths

    for folder in PACK_FOLDERS:
        default_path = os.path.join(folder_paths.models_dir, folder.name)
        if folder.name not in folder_paths.folder_names_and_paths:
            folder_paths.folder_names_and_paths[folder.name] = ([default_path], set(folder.extensions))
            continue
        paths, extensions = folder_paths.folder_names_and_paths[folder.name]
        if default_path not in paths:
            paths.append(default_path)
        merged = set(extensions) | folder.extensions
        folder_paths.folder_names_and_paths[folder.name] = (paths, merged)


def _has_match(folder_dir: Path, required: RequiredModel) -> bool:
    return folder_dir.is_dir() and any(p.is_file() for pattern in required.patterns for p in folder_dir.glob(pattern))


def missing_models(models_dir: Path) -> list[RequiredModel]:
    """The models (required and optional) with no matching file under ``models_dir``."""
    return [req for req in REQUIRED_MODELS if not _has_match(Path(models_dir) / req.folder.name, req)]


def download_command(models_dir: Path, python: str | None = None) -> str:
    """The one command that fetches every model file into ``models_dir`` (``singer_core.download``)."""
    python = python or sys.executable
    return (f"cd {shlex.quote(str(PACK_ROOT))} && {shlex.quote(python)} -m singer_core download "
            f"--models {shlex.quote(str(models_dir))}")


def missing_model_report(models_dir: Path) -> str:
    missing = missing_models(models_dir)
    if not missing:
        return "All SINGER model files are in place."
    lines = ["SINGER model files still missing (put them here):"]
    for req in missing:
        note = " [optional]" if req.optional else ""
        lines.append(f"  {Path(models_dir) / req.folder.name / req.suggested}{note}\n      from: {req.source}")
    lines.append("Fetch them all (official Hugging Face repositories, resumable, verified; licences shown first):\n"
                 f"  {download_command(models_dir)}\n"
                 "  or in ComfyUI: queue the node 'SINGER Download Models', then refresh (R).")
    return "\n".join(lines)
