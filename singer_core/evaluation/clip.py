"""Weight-free metrics of one in-memory clip (frames + song), for hosts that hold the video in memory
(the SINGER Evaluate node): PSNR/SSIM against a reference clip, CPBD, and - with face models - Diversity,
BAS and MS-Sync. Same definitions and code as the folder evaluation (docs/evaluation.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from singer_core.errors import InputError, SingerError


@dataclass
class ClipEvaluation:
    """Values by name, and the metrics not computed with the reason."""

    values: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_text(self) -> str:
        lines = [f"{name}: {value:.4f}" for name, value in self.values.items()]
        lines += [f"{name}: skipped ({reason})" for name, reason in self.skipped.items()]
        return "\n".join(lines)


def _uint8(frames) -> np.ndarray:
    """[T, H, W, 3] float in [0, 1] (torch or numpy) or uint8 -> uint8, rounding like the video writer."""
    array = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise InputError(f"Video frames must be [frames, height, width, 3] (got shape {list(array.shape)}).")
    if array.dtype == np.uint8:
        return array
    return (np.clip(array.astype(np.float32), 0, 1) * 255).astype(np.uint8)


def evaluate_clip(
    frames,
    fps: float,
    audio: tuple[np.ndarray, int] | None = None,
    reference=None,
    face_models: Any | None = None,
) -> ClipEvaluation:
    """Metrics of ``frames`` [T, H, W, 3]; ``audio`` = (mono samples, rate); ``reference`` frames for PSNR/SSIM;
    ``face_models`` (anything with ``.detector``/``.landmarker``) for the landmark metrics."""
    from .fidelity import psnr_ssim
    from .motion import diversity, head_bas
    from .multiscale import ms_sync
    from .sharpness import video_cpbd

    pixels = _uint8(frames)
    result = ClipEvaluation()

    def attempt(name: str, compute) -> bool:
        """Run one metric; a metric that cannot be computed on this clip is listed with the reason."""
        try:
            result.values.update(compute())
            return True
        except (SingerError, ValueError) as error:
            result.skipped[name] = str(error)
            return False

    if reference is not None:
        attempt("psnr/ssim", lambda: {k: v for k, v in psnr_ssim(iter(pixels), iter(_uint8(reference))).items()
                                      if k in ("psnr", "ssim")})
    else:
        result.skipped["psnr/ssim"] = "no reference video connected"
    attempt("cpbd", lambda: {"cpbd": video_cpbd(pixels)})
    if face_models is None:
        result.skipped["diversity/bas/ms_sync"] = "no face analyzer connected (landmarks needed)"
        return result
    from .landmarks import track_landmarks

    points = []
    if not attempt("diversity/bas/ms_sync", lambda: points.append(track_landmarks(face_models, pixels)) or {}):
        return result
    attempt("diversity", lambda: {"diversity": diversity(points[0])})
    if audio is None:
        result.skipped["bas/ms_sync"] = "no audio connected"
        return result
    samples, rate = audio
    attempt("bas", lambda: {"bas": head_bas(points[0], samples, rate, fps)})
    attempt("ms_sync", lambda: ms_sync(points[0], samples, rate, fps))
    return result
