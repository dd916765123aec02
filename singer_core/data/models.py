"""The models data preparation needs, found in the same ``--models`` folder layout as ``generate``
(``singer_core/pipeline/model_files.py``): wav2vec2, the insightface antelopev2 files and, optionally, the
Kim_Vocal_2 separator. The SINGER checkpoint and the VAE are not needed to prepare data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from singer_core.errors import ModelFileMissingError
from singer_core.face.models import default_face_models_dir
from singer_core.layout import ANTELOPE_FILES, SEPARATOR_FILE, WAV2VEC2
from singer_core.pipeline.model_files import pick_model


@dataclass(frozen=True)
class PrepareModelFiles:
    wav2vec: Path
    insightface: Path
    separator: Path | None

    def describe(self, vocal_separation: bool) -> dict[str, str | None]:
        """The model names that shape the data (recorded in dataset.json; a resume must use the same)."""
        used = self.separator.name if vocal_separation and self.separator else None
        return {"wav2vec": self.wav2vec.name, "face": self.insightface.name, "separator": used}


def locate_prepare_models(root: str | Path) -> PrepareModelFiles:
    """wav2vec2 (``DIR/wav2vec2/``), ``DIR/insightface/models/antelopev2`` and ``DIR/audio_separator/`` (optional)."""
    root = Path(root)
    if not root.is_dir():
        raise ModelFileMissingError(f"Models folder not found: {root}. Pass --models with the folder that holds "
                                    "wav2vec2/ and insightface/ (the same folder as for generate).")
    wav2vec = pick_model(root, WAV2VEC2, None, "wav2vec2 model",
                    "wav2vec2-base-960h (Hugging Face folder with config.json, or a single .safetensors)")
    insightface = default_face_models_dir(root)
    for name in ANTELOPE_FILES:
        if not (insightface / name).is_file():
            raise ModelFileMissingError(f"Face model missing: {insightface / name}. Put the insightface antelopev2 "
                                        f"files ({', '.join(ANTELOPE_FILES)}) in {insightface}.")
    separator = root / "audio_separator" / SEPARATOR_FILE
    return PrepareModelFiles(wav2vec, insightface, separator if separator.is_file() else None)


@dataclass
class PrepareModels:
    """Loaded once per worker process."""

    files: PrepareModelFiles
    face: Any  # singer_core.face.FaceModels
    wav2vec: Any  # transformers Wav2Vec2Model
    separator: Any  # singer_core.audio.MdxSeparator or None
    device: torch.device

    @classmethod
    def load(cls, root: str | Path, vocal_separation: bool, device: str | torch.device | None = None) -> PrepareModels:
        from singer_core.audio import MdxSeparator, load_wav2vec
        from singer_core.face import FaceModels

        files = locate_prepare_models(root)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        face = FaceModels.load(files.insightface)
        wav2vec = load_wav2vec(files.wav2vec, device=device)
        separator = MdxSeparator(files.separator) if vocal_separation and files.separator is not None else None
        return cls(files, face, wav2vec, separator, device)
