"""User-facing generation options, validated up front so errors name the option at fault."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from singer_core.errors import InputError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SCHEDULERS = ("ddim", "dpmpp", "euler")
MOTION_SOURCES = ("decoded", "latent")


@dataclass
class GenerationOptions:
    """Every knob of one generation. The defaults are the official inference settings.

    ``motion_source='decoded'`` chains clips through decoded-then-re-encoded frames (official);
    ``'latent'`` reuses the previous clip's last latents directly. ``overlap`` > 0 makes consecutive
    clips share that many frames and cross-fades them. ``color_match`` pulls each clip's colour
    statistics toward the reference image. ``guidance`` above 1 is classifier-free guidance (the
    official 3.5); 1 or less is the official no-guidance branch: the conditional half alone, half the
    UNet work (``singer_core.sampling.classifier_free_guidance``).
    """

    seed: int = 42
    steps: int = 40
    guidance: float = 3.5
    pose_weight: float = 1.0
    face_weight: float = 1.0
    lip_weight: float = 1.0
    clip_length: int = 16
    motion_frames: int = 2
    fps: int = 25
    width: int = 512
    height: int = 512
    dtype: str = "fp32"
    scheduler: str = "ddim"
    motion_source: str = "decoded"
    overlap: int = 0
    color_match: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def motion_scale(self) -> list[float]:
        """Audio-module weights in the official order [pose (full), face, lip]."""
        return [float(self.pose_weight), float(self.face_weight), float(self.lip_weight)]

    @property
    def clip_stride(self) -> int:
        """New frames contributed by each clip after the first."""
        return self.clip_length - self.overlap

    def validate(self) -> None:
        _positive_int("steps", self.steps)
        _positive_int("clip_length", self.clip_length)
        _positive_int("fps", self.fps)
        _positive_int("motion_frames", self.motion_frames)
        _non_negative_int("overlap", self.overlap)
        _non_negative_int("seed", self.seed)
        if isinstance(self.guidance, bool) or not isinstance(self.guidance, (int, float)) or not self.guidance >= 0:
            raise InputError(
                f"guidance must be a number >= 0 (got {self.guidance!r}); the official default is 3.5, and 1 or less "
                "runs without classifier-free guidance (half the work)."
            )
        if not math.isfinite(self.guidance):
            raise InputError(f"guidance must be finite (got {self.guidance!r}); the official default is 3.5.")
        for name in ("pose_weight", "face_weight", "lip_weight"):
            if not isinstance(getattr(self, name), (int, float)):
                raise InputError(f"{name} must be a number (got {getattr(self, name)!r}).")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 64 or value % 64:
                raise InputError(f"{name} must be a positive multiple of 64 (got {value!r}); the official size is 512.")
        if self.overlap >= self.clip_length:
            raise InputError(f"overlap ({self.overlap}) must be smaller than clip_length ({self.clip_length}).")
        if self.motion_frames > self.clip_stride:
            raise InputError(
                f"motion_frames ({self.motion_frames}) must not exceed clip_length - overlap ({self.clip_stride})."
            )
        _choice("dtype", self.dtype, tuple(DTYPES))
        _choice("scheduler", self.scheduler, SCHEDULERS)
        _choice("motion_source", self.motion_source, MOTION_SOURCES)


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"{name} must be a whole number >= 1 (got {value!r}).")


def _non_negative_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InputError(f"{name} must be a whole number >= 0 (got {value!r}).")


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)} (got {value!r}).")
