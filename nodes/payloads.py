"""What travels along the pack's custom sockets (no ComfyUI import here)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from singer_core.audio import AudioFeatures, MdxSeparator
    from singer_core.face import FaceModels, ReferenceFace
    from singer_core.net import SingerNet


@dataclass
class SingerModel:
    """A loaded SINGER (or Hallo) network under ComfyUI's memory manager, and the file it came from.

    ``patcher`` is a ``ModelPatcher`` (``nodes.devices.managed``) holding the net; ``net`` is the net itself,
    on whatever device ComfyUI has it now (load it with ``nodes.devices.working`` before computing).
    """

    patcher: Any
    source_path: str

    @property
    def net(self) -> SingerNet:
        return self.patcher.model.inner

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
    """A loaded wav2vec2 model under ComfyUI's memory manager (``patcher``, as for :class:`SingerModel`)."""

    patcher: Any
    source_path: str

    @property
    def model(self) -> Any:  # transformers Wav2Vec2Model
        return self.patcher.model.inner

    def __str__(self) -> str:
        count = sum(p.numel() for p in self.model.parameters())
        return f"wav2vec2 from {os.path.basename(self.source_path)}: {count / 1e6:.2f} M parameters"

    __repr__ = __str__


class _OnnxModels:
    """ONNX sessions that do not hold GPU memory between nodes.

    On the CPU provider the sessions are created once and kept (host memory, like any loaded model). With
    the CUDA provider they are created for each use and released at its end: onnxruntime keeps a session's
    weights and its CUDA memory arena for as long as the session lives, and frees them when it is destroyed,
    so dropping the sessions (and collecting them at once) returns that memory when the node finishes.
    """

    providers: list[str]
    _kept: Any

    def _load(self) -> Any:
        raise NotImplementedError

    @property
    def on_gpu(self) -> bool:
        return "CUDAExecutionProvider" in self.providers

    @contextmanager
    def session(self) -> Iterator[Any]:
        if self._kept is not None:
            yield self._kept
            return
        loaded = self._load()
        if not self.on_gpu:
            self._kept = loaded
            yield loaded
            return
        try:
            yield loaded
        finally:
            del loaded
            gc.collect()


@dataclass
class FaceAnalyzer(_OnnxModels):
    """The three antelopev2 ONNX models (detector, recognition, 106 landmarks) in ``directory``."""

    directory: Path
    providers: list[str]
    _kept: FaceModels | None = field(default=None, repr=False)

    def _load(self) -> FaceModels:
        from singer_core.face import FaceModels

        return FaceModels.load(self.directory, providers=self.providers)

    def __str__(self) -> str:
        return f"face analysis models from {self.directory} ({', '.join(self.providers)})"

    __repr__ = __str__


@dataclass
class VocalSeparator(_OnnxModels):
    """An MDX-Net vocal separator (e.g. Kim_Vocal_2.onnx) run by onnxruntime."""

    source_path: str
    providers: list[str]
    _kept: MdxSeparator | None = field(default=None, repr=False)

    def _load(self) -> MdxSeparator:
        from singer_core.audio import MdxSeparator

        return MdxSeparator(self.source_path, providers=self.providers)

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
    carried from one clip to the next (decoded, then re-encoded, as the official pipeline does). ``photo`` is the
    whole input IMAGE ([H, W, 3], as given), which 'SINGER Paste Back' and 'SINGER Decode to Video' paste into.
    """

    face: ReferenceFace
    vae: Any
    photo: Any = None

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
