"""What travels along the pack's custom sockets (no ComfyUI import here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from singer_core.audio import AudioFeatures, MdxSeparator
    from singer_core.face import FaceModels, ReferenceFace
    from singer_core.net import SingerNet


@dataclass
class SingerModel:
    """A loaded SINGER (or Hallo) network and the file it came from."""

    net: SingerNet
    source_path: str

    def __str__(self) -> str:
        """One line for people (e.g. ComfyUI's 'Preview as Text'); the net's own repr is thousands of lines."""
        kind = "SINGER" if self.net.is_singer else "Hallo"
        first = next(self.net.parameters())
        count = sum(p.numel() for p in self.net.parameters())
        name = os.path.basename(self.source_path)
        return f"{kind} net from {name}: {count / 1e6:.2f} M parameters, {str(first.dtype).removeprefix('torch.')}"

    __repr__ = __str__


@dataclass
class AudioEncoder:
    """A loaded wav2vec2 model (kept on the offload device between runs) and where it came from."""

    model: Any  # transformers Wav2Vec2Model
    source_path: str

    def __str__(self) -> str:
        count = sum(p.numel() for p in self.model.parameters())
        return f"wav2vec2 from {os.path.basename(self.source_path)}: {count / 1e6:.2f} M parameters"

    __repr__ = __str__


@dataclass
class FaceAnalyzer:
    """The three antelopev2 ONNX models (detector, recognition, 106 landmarks)."""

    models: FaceModels

    def __str__(self) -> str:
        return f"face analysis models from {self.models.directory}"

    __repr__ = __str__


@dataclass
class VocalSeparator:
    """An MDX-Net vocal separator (e.g. Kim_Vocal_2.onnx) in an onnxruntime session."""

    separator: MdxSeparator
    source_path: str

    def __str__(self) -> str:
        return f"vocal separator {os.path.basename(self.source_path)}"

    __repr__ = __str__


@dataclass
class SingerAudio:
    """Per-frame wav2vec2 tokens of a song (``features``), plus facts about the source for checks and people.

    ``features.audio_length`` is the number of video frames the song covers at ``features.fps``;
    ``features.clip_length`` is the padding unit the tokens were computed with (the sampler's clip length).
    """

    features: AudioFeatures
    duration_s: float
    vocals_separated: bool

    def __str__(self) -> str:
        f = self.features
        separated = ", vocals separated" if self.vocals_separated else ""
        return (f"{self.duration_s:.2f} s of audio -> {f.audio_length} frames at {f.fps} fps "
                f"(padded to {f.frames} for clips of {f.clip_length}){separated}")

    __repr__ = __str__


@dataclass
class SingerReference:
    """The prepared reference portrait and the VAE the sampler encodes/decodes with (``vae`` is ComfyUI's VAE).

    The VAE travels here because the sampler needs it for the reference latent and for the motion frames
    carried from one clip to the next (decoded, then re-encoded, as the official pipeline does).
    """

    face: ReferenceFace
    vae: Any

    @property
    def width(self) -> int:
        return self.face.width

    @property
    def height(self) -> int:
        return self.face.height

    def __str__(self) -> str:
        x1, y1, x2, y2 = self.face.crop_box
        return (f"reference {self.width}x{self.height} from the photo region ({x1}, {y1})-({x2}, {y2}), "
                f"{self.face.num_faces} face(s) detected")

    __repr__ = __str__
