"""Per-video inputs shared by the metrics, computed once and cached (frames, audio, landmarks ...)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from singer_core.errors import InputError, ModelFileMissingError

from .media import VideoPair, frame_count, iter_frames, read_audio_track, video_fps


@dataclass
class Resources:
    """What the metrics load once for the whole run: the models folder, the device and loaded networks."""

    models: Path | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    face_crops: bool = False
    progress: bool = False  # per-frame bars (below the per-video bar) for the long passes
    loaded: dict[str, Any] = field(default_factory=dict)

    def weight_path(self, relative: str) -> Path:
        """``MODELS/<relative>``; raises ModelFileMissingError naming the file and where it goes."""
        if self.models is None:
            raise ModelFileMissingError(f"needs the weights file '{relative}': pass --models DIR with the file "
                                        f"at DIR/{relative}")
        path = self.models / relative
        if not path.is_file():
            raise ModelFileMissingError(f"weights file missing: put it at '{path}'")
        return path

    def face_models(self):
        """The detector + landmark models (``MODELS/insightface/models/antelopev2``), loaded once."""
        from .landmarks import FACE_WEIGHTS, LandmarkModels

        if "face" not in self.loaded:
            self.loaded["face"] = LandmarkModels.load(self.weight_path(FACE_WEIGHTS[0]).parent)
        return self.loaded["face"]

    def get(self, key: str, loader):
        """Load a network once (``loader()``) and keep it for the next videos."""
        if key not in self.loaded:
            self.loaded[key] = loader()
        return self.loaded[key]


@dataclass
class VideoContext:
    """One video pair and the values derived from it that several metrics need."""

    pair: VideoPair
    resources: Resources
    cache: dict[str, Any] = field(default_factory=dict)

    def cached(self, key: str, compute):
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def _frames(self, path: Path, what: str):
        frames = iter_frames(path)
        if not self.resources.progress:
            return frames
        from tqdm import tqdm

        return tqdm(frames, total=frame_count(path), desc=f"{self.pair.name}: {what}", unit="frame", leave=False,
                    file=sys.stderr)

    def frames(self, what: str = "frames"):
        """A fresh iterator over the generated frames (RGB uint8); ``what`` labels its progress bar."""
        return self._frames(self.pair.generated, what)

    def reference_frames(self, what: str = "reference frames"):
        if self.pair.reference is None:
            raise InputError("this metric needs a reference video (pass --reference DIR)")
        return self._frames(self.pair.reference, what)

    def landmarks(self):
        """[T, 106, 2] landmarks of the generated video."""
        from .landmarks import track_landmarks

        return self.cached("landmarks",
                           lambda: track_landmarks(self.resources.face_models(), self.frames("landmarks")))

    def reference_landmarks(self):
        from .landmarks import track_landmarks

        return self.cached("reference_landmarks",
                           lambda: track_landmarks(self.resources.face_models(),
                                                   self.reference_frames("reference landmarks")))

    @property
    def fps(self) -> float:
        return self.cached("fps", lambda: video_fps(self.pair.generated))

    def audio(self):
        """Mono float32 audio of the generated video and its rate; an InputError when there is no track."""

        def load():
            track = read_audio_track(self.pair.generated)
            if track is None:
                raise InputError(f"'{self.pair.generated.name}' has no audio track; this metric needs the song "
                                 "muxed into the video (as `python -m singer_core generate` writes it).")
            return track

        return self.cached("audio", load)
