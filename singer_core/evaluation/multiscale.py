"""MS-Sync: audio-motion synchrony at several time scales (new; after the multi-scale synchrony idea of
Airale et al. 2023). Weight-free apart from the face landmarks.

Singing moves the lips with the syllable and the head with the phrase and the beat. A lip-sync network
(LSE) sees 0.2 s windows only; MS-Sync asks, at 0.2, 0.4, 0.8 and 1.6 s, whether the song's loudness goes
together with the mouth opening and with the head's speed. Definition (per video, at the video rate f):

* audio envelope e[t] = RMS of the mono song over video frame t's samples [t*sr/f, (t+1)*sr/f);
* mouth opening m[t] = extent of the inner-lip points (``2d106det`` 64-71) across the line through the
  mouth corners (52, 61), divided by the corner distance (scale- and roll-free);
* head speed h[t] = mean over the 86 landmarks outside the mouth (0-51, 72-105) of |p[t] - p[t-1]|
  (h[0] = h[1]), divided by the inter-ocular distance (eye centres) of the frame, so that talking alone
  does not count as head motion;
* at level l = 0..3 each signal is averaged over a window of ``round(0.2 s * f) * 2^l`` frames
  (moving mean, only whole windows) and subsampled by ``2^l``;
* ``ms_sync_mouth_<w>`` / ``ms_sync_head_<w>`` = Pearson correlation of (e, m) / (e, h) at that level,
  w = 0.2s, 0.4s, 0.8s, 1.6s. Values in [-1, 1]; higher = motion follows the song's loudness more.

A level is left out when fewer than ``MIN_SAMPLES`` subsampled values remain (short videos) or a signal
is constant there.
"""

from __future__ import annotations

import numpy as np

from singer_core.face.landmarks import LEFT_EYE, MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER, RIGHT_EYE

from .landmarks import HEAD_POINTS, INNER_LIP

BASE_WINDOW_S = 0.2
LEVELS = 4
MIN_SAMPLES = 8
CORNERS = (MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER)


def columns() -> list[str]:
    return [f"ms_sync_{part}_{BASE_WINDOW_S * 2**level:.1f}s" for part in ("mouth", "head") for level in range(LEVELS)]


def audio_envelope(audio: np.ndarray, sample_rate: int, fps: float, frames: int) -> np.ndarray:
    """RMS of the samples of each video frame (zeros past the end of the audio)."""
    audio = np.asarray(audio, dtype=np.float64)
    bounds = np.round(np.arange(frames + 1) * sample_rate / fps).astype(np.int64)
    squares = np.concatenate([[0.0], np.cumsum(audio**2)])
    bounds = np.minimum(bounds, len(audio))
    counts = np.maximum(bounds[1:] - bounds[:-1], 1)
    return np.sqrt((squares[bounds[1:]] - squares[bounds[:-1]]) / counts)


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """Inner-lip opening across the corner line, relative to the mouth width, per frame."""
    points = np.asarray(points, dtype=np.float64)
    axis = points[:, CORNERS[1]] - points[:, CORNERS[0]]
    width = np.linalg.norm(axis, axis=1)
    normal = np.stack([-axis[:, 1], axis[:, 0]], axis=1) / np.maximum(width, 1e-9)[:, None]
    across = np.einsum("tkd,td->tk", points[:, INNER_LIP], normal)
    return (across.max(axis=1) - across.min(axis=1)) / np.maximum(width, 1e-9)


def head_speed(points: np.ndarray) -> np.ndarray:
    """Mean displacement of the non-mouth landmarks since the previous frame, in inter-ocular distances
    (first frame = second)."""
    points = np.asarray(points, dtype=np.float64)
    eyes = np.linalg.norm(points[:, LEFT_EYE].mean(axis=1) - points[:, RIGHT_EYE].mean(axis=1), axis=1)
    rigid = points[:, HEAD_POINTS]
    speed = np.linalg.norm(rigid[1:] - rigid[:-1], axis=2).mean(axis=1) / np.maximum(eyes[1:], 1e-9)
    return np.concatenate([speed[:1], speed])


def smooth_subsample(signal: np.ndarray, window: int, step: int) -> np.ndarray:
    """Moving mean over ``window`` samples (whole windows only), every ``step``-th value."""
    signal = np.asarray(signal, dtype=np.float64)
    if len(signal) < window:
        return signal[:0]
    cumulative = np.concatenate([[0.0], np.cumsum(signal)])
    return ((cumulative[window:] - cumulative[:-window]) / window)[::step]


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return None if norm <= 1e-12 * max(len(a), 1) else float((a * b).sum() / norm)


def ms_sync(points: np.ndarray, audio: np.ndarray, sample_rate: int, fps: float) -> dict[str, float]:
    """MS-Sync values of a landmark track [T, 106, 2] and its song (mono), keyed by :func:`columns`."""
    frames = len(points)
    envelope = audio_envelope(audio, sample_rate, fps, frames)
    motion = {"mouth": mouth_opening(points), "head": head_speed(points)}
    base = max(1, round(BASE_WINDOW_S * fps))
    values = {}
    for part, signal in motion.items():
        for level in range(LEVELS):
            window, step = base * 2**level, 2**level
            e, s = smooth_subsample(envelope, window, step), smooth_subsample(signal, window, step)
            if len(e) < MIN_SAMPLES:
                continue
            r = _pearson(e, s)
            if r is not None:
                values[f"ms_sync_{part}_{BASE_WINDOW_S * 2**level:.1f}s"] = r
    if not values:
        raise ValueError("MS-Sync: the video is too short or the landmarks/audio do not move at any scale")
    return values
