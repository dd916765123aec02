"""Quality filter of the data preparation: the reasons a video is turned away and the measurements behind them.

Official filters: Hallo's ``extract_meta_info_stage2.py`` drops videos whose audio and frame counts differ by
more than 3 frames; SINGER's paper removes "low-quality clips" without saying how. The other checks here are
ours, each measured on the frames the face analysis samples (every ``detect_every``-th 25 fps frame) and
recorded in the video's ``quality`` dict, so a threshold can be judged and changed later:

* no face / several faces: share of sampled frames without a face, or with a second face at least
  ``second_face_area`` times the largest one's area (a small face in the background is ignored);
* face too small: median face-box height relative to the crop window and in source pixels;
* blur: median variance of the Laplacian of the face, resized to ``SHARPNESS_SIDE`` pixels square;
* silence: share of 25 fps frames whose RMS is above ``silence_db`` dBFS (after vocal separation: no voice).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from singer_core.errors import InputError

SHARPNESS_SIDE = 128


class RejectReason(str, enum.Enum):  # noqa: UP042 (StrEnum needs Python 3.11; the pack supports 3.10)
    NO_AUDIO = "no_audio"
    CORRUPT = "corrupt"
    TOO_SHORT = "too_short"
    LENGTH_MISMATCH = "length_mismatch"
    SILENCE = "silence"
    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    FACE_TOO_SMALL = "face_too_small"
    BLURRY = "blurry"
    ERROR = "error"  # an unexpected failure: retried on the next run


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds of the quality filter (defaults documented in docs/dataset_format.md)."""

    max_length_mismatch: int = 3  # frames, official
    min_frames: int = 25  # 1 s; the official training clip needs 14 + 2 motion + 2x2 audio margin frames
    min_face_share: float = 0.9  # sampled frames with a face
    max_several_share: float = 0.1  # sampled frames with a second face
    second_face_area: float = 0.1  # a second face counts when at least this share of the largest's area
    min_face_size: float = 0.15  # median face height / crop side
    min_face_pixels: int = 64  # median face height in source pixels
    min_sharpness: float = 20.0  # median variance of the Laplacian of the face (128 px)
    silence_db: float = -40.0  # a frame is voiced above this RMS level
    min_voiced_share: float = 0.2  # voiced frames

    def to_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self) -> None:
        shares = (self.min_face_share, self.max_several_share, self.second_face_area, self.min_voiced_share,
                  self.min_face_size)
        if not all(0.0 <= share <= 1.0 for share in shares):
            raise InputError(f"quality thresholds given as shares (e.g. --min-face-size) must be within 0..1: {self}")
        if self.max_length_mismatch < 0 or self.min_frames < 1 or self.min_face_pixels < 0:
            raise InputError(f"invalid quality settings: {self}")


def sharpness(gray: np.ndarray, box: np.ndarray) -> float:
    """Variance of the Laplacian of the face ``box`` of a grayscale frame, resized to a fixed side so the
    value does not depend on the source resolution."""
    h, w = gray.shape
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return 0.0
    face = cv2.resize(gray[y1:y2, x1:x2], (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(face, cv2.CV_64F).var())


def voiced_share(waveform: torch.Tensor, sample_rate: int, fps: int, silence_db: float) -> tuple[float, float]:
    """(share of ``fps`` frames above ``silence_db`` dBFS RMS, overall RMS in dBFS) of a mono waveform."""
    step = sample_rate // fps
    samples = waveform.double().reshape(-1)
    if samples.numel() < step:
        return 0.0, -float("inf")
    frames = samples[: samples.numel() // step * step].reshape(-1, step)
    level = 20 * torch.log10(frames.pow(2).mean(dim=1).sqrt().clamp_min(1e-10))
    overall = 20 * torch.log10(samples.pow(2).mean().sqrt().clamp_min(1e-10))
    return float((level > silence_db).double().mean()), float(overall)
