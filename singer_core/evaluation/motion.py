"""Landmark metrics: BAS (beat alignment), LMD (mouth landmark distance), Diversity (landmark spread).

BAS follows Bailando (Li et al. 2022, ``utils/beat_align_score.py`` and ``extractor.py``) with the face's
head landmarks (the 86 points outside the mouth) in place of body joints:

* music beats: the audio resampled to ``fps * 512`` Hz so that one onset frame (hop 512) is one video
  frame (Bailando: 60 fps <-> 30720 Hz); percussive part of ``librosa.effects.hpss``;
  ``librosa.onset.onset_strength(aggregate=np.median)``; ``librosa.beat.beat_track`` on that envelope;
* motion beats: velocity ``v[t] = mean_k |p[t+1, k] - p[t, k]|`` (T-1 values), smoothed with
  ``scipy.ndimage.gaussian_filter(v, 5)``, beats = strict local minima (``argrelextrema(v, np.less)``);
  music beats at frames >= T-1 are dropped (Bailando cuts the music to the velocity's length);
* BAS = mean over music beats b of ``exp(-min_m (m - b)^2 / (2 * 3^2))`` (sigma = 3 frames).

LMD: per frame, the 20 mouth points (``2d106det`` 52-71) of the generated and of the reference video,
each set minus its own mean; the Euclidean distance of corresponding points, averaged over points and
frames (aligned frames, the shorter length), in pixels of the generated frame (reference landmarks are
scaled by the width ratio when the sizes differ).

Diversity: the standard deviation over time of each landmark coordinate (all 106 points, x and y, frame
pixels), averaged over coordinates: how much the face moves and deforms.
"""

from __future__ import annotations

import numpy as np

from singer_core.errors import InputError
from singer_core.face.landmarks import MOUTH

HOP = 512
VELOCITY_SIGMA = 5.0
BEAT_SIGMA = 3.0


def music_beats(audio: np.ndarray, sample_rate: int, fps: float) -> np.ndarray:
    """Beat frames (video frame indices) of a mono song, as Bailando's feature extractor finds them."""
    try:
        import librosa
    except ImportError as error:
        raise InputError("BAS needs the librosa package for beat tracking: pip install librosa") from error
    rate = int(round(fps * HOP))
    y = np.asarray(audio, dtype=np.float32)
    if sample_rate != rate:
        y = librosa.resample(y, orig_sr=sample_rate, target_sr=rate)
    _, percussive = librosa.effects.hpss(y)
    onset = librosa.onset.onset_strength(y=percussive, aggregate=np.median, sr=rate)
    _, beats = librosa.beat.beat_track(onset_envelope=onset, sr=rate)
    return np.asarray(beats, dtype=np.int64)


def motion_beats(points: np.ndarray) -> tuple[np.ndarray, int]:
    """Local minima of the smoothed mean point speed of [T, K, D] points, and the speed's length (T-1)."""
    from scipy.ndimage import gaussian_filter
    from scipy.signal import argrelextrema

    points = np.asarray(points, dtype=np.float64)
    velocity = np.mean(np.sqrt(np.sum((points[1:] - points[:-1]) ** 2, axis=2)), axis=1)
    velocity = gaussian_filter(velocity, VELOCITY_SIGMA)
    return argrelextrema(velocity, np.less)[0], len(velocity)


def beat_align(music: np.ndarray, motion: np.ndarray, sigma: float = BEAT_SIGMA) -> float:
    """Mean over music beats of exp(-d^2 / 2 sigma^2), d = distance to the nearest motion beat."""
    music, motion = np.asarray(music, dtype=np.float64), np.asarray(motion, dtype=np.float64)
    if music.size == 0:
        raise ValueError("no music beat was found in the audio")
    if motion.size == 0:
        raise ValueError("no motion beat (local minimum of the landmark speed) was found")
    nearest = np.min((motion[None, :] - music[:, None]) ** 2, axis=1)
    return float(np.mean(np.exp(-nearest / 2 / sigma**2)))


def bas(points: np.ndarray, audio: np.ndarray, sample_rate: int, fps: float) -> float:
    """Beat Align Score of a landmark track [T, K, 2] and its song."""
    motion, length = motion_beats(points)
    beats = music_beats(audio, sample_rate, fps)
    return beat_align(beats[beats < length], motion)


def head_bas(landmarks: np.ndarray, audio: np.ndarray, sample_rate: int, fps: float) -> float:
    """BAS of the head: the 86 landmarks outside the mouth of a [T, 106, 2] track (mouth motion follows the
    syllables, not the beat, and would add its own speed minima)."""
    from .landmarks import HEAD_POINTS

    return bas(np.asarray(landmarks)[:, HEAD_POINTS], audio, sample_rate, fps)


def lmd(generated: np.ndarray, reference: np.ndarray, scale: float = 1.0) -> float:
    """Mouth landmark distance of two [T, 106, 2] tracks (aligned frames; reference scaled by ``scale``)."""
    frames = min(len(generated), len(reference))
    if frames == 0:
        raise ValueError("no frames to compare")
    gen = np.asarray(generated, dtype=np.float64)[:frames, MOUTH]
    ref = np.asarray(reference, dtype=np.float64)[:frames, MOUTH] * scale
    gen = gen - gen.mean(axis=1, keepdims=True)
    ref = ref - ref.mean(axis=1, keepdims=True)
    return float(np.mean(np.linalg.norm(gen - ref, axis=2)))


def diversity(points: np.ndarray) -> float:
    """Mean over landmark coordinates of their standard deviation over time."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        raise ValueError("diversity needs at least two frames")
    return float(np.mean(np.std(points, axis=0)))
