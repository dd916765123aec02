"""Where the SINGER model files live inside ComfyUI's ``models/`` folder.

One table says which folders the pack registers with ComfyUI's
``folder_paths`` and which files a SINGER workflow needs in them. Importing
this module needs no ComfyUI: ``tools/comfy_host.py serve`` uses the table to
tell what is still missing; ``register_model_folders()`` is called by the
extension inside ComfyUI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_EXTENSIONS = frozenset({".safetensors", ".pth", ".pt", ".ckpt", ".bin"})


@dataclass(frozen=True)
class ModelFolder:
    """A ``folder_paths`` key and the file types listed in it."""

    name: str
    extensions: frozenset[str]


SINGER = ModelFolder("singer", CHECKPOINT_EXTENSIONS)
WAV2VEC2 = ModelFolder("wav2vec2", frozenset({".safetensors", ".bin"}))
INSIGHTFACE = ModelFolder("insightface", frozenset({".onnx"}))
VAE = ModelFolder("vae", CHECKPOINT_EXTENSIONS)  # ComfyUI's own folder

PACK_FOLDERS = (SINGER, WAV2VEC2, INSIGHTFACE)


@dataclass(frozen=True)
class RequiredModel:
    """A file a SINGER workflow needs: any file matching ``pattern`` in ``folder`` will do."""

    folder: ModelFolder
    pattern: str
    suggested: str
    source: str


REQUIRED_MODELS = (
    RequiredModel(
        SINGER, "*", "singer_net.safetensors", "SINGER checkpoint net.pth from huggingface.co/yl2333/SINGER"
    ),
    RequiredModel(
        WAV2VEC2,
        "*/model.safetensors",
        "wav2vec2-base-960h/model.safetensors (+ config.json, preprocessor_config.json)",
        "huggingface.co/facebook/wav2vec2-base-960h",
    ),
    RequiredModel(
        INSIGHTFACE,
        "**/scrfd_10g_bnkps.onnx",
        "antelopev2/scrfd_10g_bnkps.onnx",
        "insightface model zoo, antelopev2 pack (face detector)",
    ),
    RequiredModel(
        INSIGHTFACE,
        "**/glintr100.onnx",
        "antelopev2/glintr100.onnx",
        "insightface model zoo, antelopev2 pack (face embedding)",
    ),
    RequiredModel(VAE, "*", "sd-vae-ft-mse.safetensors", "huggingface.co/stabilityai/sd-vae-ft-mse"),
)


def register_model_folders() -> None:
    """Register the pack's folders under ComfyUI's models dir (creates nothing on disk).

    A folder the user already configured (extra_model_paths.yaml) keeps its
    paths; ours is added as the default and our file types are merged in.
    """
    import folder_paths

    for folder in PACK_FOLDERS:
        default_path = os.path.join(folder_paths.models_dir, folder.name)
        if folder.name not in folder_paths.folder_names_and_paths:
            folder_paths.folder_names_and_paths[folder.name] = ([default_path], set(folder.extensions))
            continue
        paths, extensions = folder_paths.folder_names_and_paths[folder.name]
        if default_path not in paths:
            paths.insert(0, default_path)
        merged = set(extensions) | folder.extensions
        folder_paths.folder_names_and_paths[folder.name] = (paths, merged)


def _has_match(folder_dir: Path, required: RequiredModel) -> bool:
    if not folder_dir.is_dir():
        return False
    return any(
        p.is_file() and p.suffix.lower() in required.folder.extensions for p in folder_dir.glob(required.pattern)
    )


def missing_models(models_dir: Path) -> list[RequiredModel]:
    """The required models with no matching file under ``models_dir``."""
    return [req for req in REQUIRED_MODELS if not _has_match(Path(models_dir) / req.folder.name, req)]


def missing_model_report(models_dir: Path) -> str:
    missing = missing_models(models_dir)
    if not missing:
        return "All SINGER model files are in place."
    lines = ["SINGER model files still missing (put them here):"]
    for req in missing:
        lines.append(f"  {Path(models_dir) / req.folder.name / req.suggested}\n      from: {req.source}")
    return "\n".join(lines)
