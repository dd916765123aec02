"""Finding the model files in a folder laid out like ComfyUI's ``models/`` (the layout and the accepted file
types are ``singer_core.layout``'s, shared with the ComfyUI nodes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from singer_core.errors import ModelFileMissingError
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


@dataclass
class ModelFiles:
    """Resolved paths of every model the CLI needs."""

    checkpoint: Path
    vae: Path
    wav2vec: Path
    insightface: Path  # the folder holding the antelopev2 .onnx files
    separator: Path | None


def locate_models(root: str | Path, checkpoint: str | None = None, vae: str | None = None) -> ModelFiles:
    """Find every model under ``root``; raise :class:`ModelFileMissingError` naming the missing one.

    ``checkpoint`` / ``vae`` pick one entry by name when a folder holds several.
    """
    root = Path(root)
    if not root.is_dir():
        raise ModelFileMissingError(f"Models folder not found: {root}. Pass --models with the folder that holds "
                                    "singer/, vae/, wav2vec2/ and insightface/.")
    insightface = root / INSIGHTFACE.name / FACE_MODELS_SUBDIR
    for name in ANTELOPE_FILES:
        if not (insightface / name).is_file():
            raise ModelFileMissingError(
                f"Face model missing: {insightface / name}. Put the insightface antelopev2 files "
                f"({', '.join(ANTELOPE_FILES)}) in {insightface}."
            )
    separator = root / AUDIO_SEPARATOR.name / SEPARATOR_FILE
    return ModelFiles(
        checkpoint=pick_model(root, SINGER, checkpoint, "SINGER checkpoint", "the SINGER net.pth (or a converted "
                         ".safetensors)", files_only=True),
        vae=pick_model(root, VAE, vae, "VAE", "sd-vae-ft-mse (diffusers folder or single .safetensors)"),
        wav2vec=pick_model(root, WAV2VEC2, None, "wav2vec2 model", "wav2vec2-base-960h (Hugging Face folder with "
                      "config.json, or a single .safetensors)"),
        insightface=insightface,
        separator=separator if separator.is_file() else None,
    )


def _candidates(folder: Path, extensions: frozenset[str], files_only: bool) -> list[Path]:
    if (folder / "config.json").is_file() and not files_only:
        return [folder]  # the folder itself is a diffusers / Hugging Face model folder
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix in extensions:
            found.append(entry)
        elif entry.is_dir() and not files_only and (entry / "config.json").is_file():
            found.append(entry)
    return found


def pick_model(root: Path, kind: ModelFolder, name: str | None, what: str, expected: str,
               files_only: bool = False) -> Path:
    """The one model of ``kind`` under ``root`` (by ``name`` when given); every missing or ambiguous case is a
    :class:`ModelFileMissingError` naming the folder and ``expected``. Shared by generate, data and train."""
    folder = root / kind.name
    if not folder.is_dir():
        raise ModelFileMissingError(f"{what} folder missing: {folder}. Create it and put {expected} in it.")
    found = _candidates(folder, kind.extensions, files_only)
    if name is not None:
        chosen = [p for p in found if p.name == name or p.stem == name]
        if not chosen:
            raise ModelFileMissingError(f"{what} {name!r} not found in {folder} (found: "
                                        f"{', '.join(p.name for p in found) or 'nothing'}).")
        return chosen[0]
    if not found:
        raise ModelFileMissingError(f"No {what} in {folder}. Put {expected} there.")
    if len(found) > 1:
        raise ModelFileMissingError(f"Several {what} candidates in {folder}: {', '.join(p.name for p in found)}. "
                                    "Choose one by name with the matching command-line option.")
    return found[0]
