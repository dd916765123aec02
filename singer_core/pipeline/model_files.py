"""Where the model files live in a folder laid out like ComfyUI's ``models/``.

::

    DIR/singer/<net>.safetensors | <net>.pth          SINGER (or Hallo) checkpoint
    DIR/vae/<name>/  (diffusers folder)  or  DIR/vae/<name>.safetensors   sd-vae-ft-mse
    DIR/wav2vec2/<name>/  (Hugging Face folder)  or  DIR/wav2vec2/<name>.safetensors   wav2vec2-base-960h
    DIR/insightface/models/antelopev2/{scrfd_10g_bnkps,glintr100,2d106det}.onnx
    DIR/audio_separator/Kim_Vocal_2.onnx               (optional vocal separator)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from singer_core.errors import ModelFileMissingError

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".ckpt", ".bin")
ANTELOPE_FILES = ("scrfd_10g_bnkps.onnx", "glintr100.onnx", "2d106det.onnx")
SEPARATOR_FILE = "Kim_Vocal_2.onnx"


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
    insightface = root / "insightface" / "models" / "antelopev2"
    for name in ANTELOPE_FILES:
        if not (insightface / name).is_file():
            raise ModelFileMissingError(
                f"Face model missing: {insightface / name}. Put the insightface antelopev2 files "
                f"({', '.join(ANTELOPE_FILES)}) in {insightface}."
            )
    separator = root / "audio_separator" / SEPARATOR_FILE
    return ModelFiles(
        checkpoint=_pick(root / "singer", checkpoint, "SINGER checkpoint", "the SINGER net.pth (or a converted "
                         ".safetensors)", files_only=True),
        vae=_pick(root / "vae", vae, "VAE", "sd-vae-ft-mse (diffusers folder or single .safetensors)"),
        wav2vec=_pick(root / "wav2vec2", None, "wav2vec2 model", "wav2vec2-base-960h (Hugging Face folder with "
                      "config.json, or a single .safetensors)"),
        insightface=insightface,
        separator=separator if separator.is_file() else None,
    )


def _candidates(folder: Path, files_only: bool) -> list[Path]:
    if (folder / "config.json").is_file() and not files_only:
        return [folder]  # the folder itself is a diffusers / Hugging Face model folder
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix in CHECKPOINT_SUFFIXES:
            found.append(entry)
        elif entry.is_dir() and not files_only and (entry / "config.json").is_file():
            found.append(entry)
    return found


def _pick(folder: Path, name: str | None, what: str, expected: str, files_only: bool = False) -> Path:
    if not folder.is_dir():
        raise ModelFileMissingError(f"{what} folder missing: {folder}. Create it and put {expected} in it.")
    found = _candidates(folder, files_only)
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
