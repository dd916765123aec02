"""Golden data for BAS from Bailando's own code (lisiyao21/Bailando: utils/beat_align_score.py, extractor.py).

Run in a throwaway venv with a checkout of Bailando (never in the pack's environment):

    python3 -m venv /tmp/metrics-bas
    /tmp/metrics-bas/bin/pip install librosa==0.11.0 numpy==2.4.6 scipy==1.17.1 matplotlib
    MPLBACKEND=Agg /tmp/metrics-bas/bin/python tools/make_metric_fixtures_bas.py /path/to/Bailando

Bailando's extractor was written for librosa 0.8, which took ``onset_strength``'s signal and ``peak_pick``'s
parameters positionally; librosa 0.10+ makes them keyword-only. The two functions are wrapped to pass the same
values by keyword (nothing else changes). Writes tests/fixtures/metrics/bas.npz: a short synthetic song at
25 * 512 Hz, landmark-like point tracks, Bailando's music beats, motion beats and BA scores.
"""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stdout
from pathlib import Path

import librosa
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "metrics" / "bas.npz"
FPS = 25
RATE = FPS * 512


def keyword_compat() -> None:
    onset_strength, peak_pick = librosa.onset.onset_strength, librosa.util.peak_pick

    def onset_strength_compat(y=None, **kwargs):
        return onset_strength(y=y, **kwargs)

    def peak_pick_compat(x, pre_max, post_max, pre_avg, post_avg, delta, wait, **kwargs):
        return peak_pick(x, pre_max=pre_max, post_max=post_max, pre_avg=pre_avg, post_avg=post_avg,
                         delta=delta, wait=wait, **kwargs)

    librosa.onset.onset_strength = onset_strength_compat
    librosa.util.peak_pick = peak_pick_compat


def song(seconds: float = 4.0) -> np.ndarray:
    """Clicks at 126 bpm over a quiet chord and noise, as int16 (small fixture)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    y = 0.05 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277 * t)) + 0.01 * rng.normal(size=t.size)
    for start in np.arange(0.11, seconds, 60 / 126):
        i = int(start * RATE)
        n = min(400, t.size - i)
        y[i:i + n] += 0.8 * np.exp(-np.arange(n) / 60) * rng.normal(size=n)
    return np.round(np.clip(y, -1, 1) * 32767).astype(np.int16)


def tracks(frames: int) -> np.ndarray:
    """Three [T, 24, 3] point tracks (Bailando's joint layout) with rhythmic and random motion."""
    rng = np.random.default_rng(1)
    t = np.arange(frames)[:, None, None]
    base = rng.normal(size=(1, 24, 3)) * 50
    rhythmic = base + 4 * np.sin(2 * np.pi * t / 12.0 + rng.uniform(0, 6, (1, 24, 3)))
    walk = base + np.cumsum(rng.normal(size=(frames, 24, 3)), axis=0)
    mixed = rhythmic + 0.5 * np.cumsum(rng.normal(size=(frames, 24, 3)), axis=0)
    return np.stack([rhythmic, walk, mixed])


def main(bailando: Path) -> None:
    keyword_compat()
    sys.path[:0] = [str(bailando), str(bailando / "utils")]
    from beat_align_score import BA, calc_db
    from extractor import FeatureExtractor

    audio = song()
    y = audio.astype(np.float32) / 32768
    with redirect_stdout(io.StringIO()):  # the extractor prints shapes
        _, percussive = FeatureExtractor.get_hpss(y)
        onset = FeatureExtractor.get_onset_strength(percussive, RATE)
        beats_one_hot = FeatureExtractor.get_onset_beat(onset, RATE)[0][0]
    music = np.arange(len(beats_one_hot))[beats_one_hot.astype(bool)]
    points = tracks(len(onset))
    motion, scores, lengths = [], [], []
    for track in points:
        motion_beats, length = calc_db(track.reshape(len(track), -1))
        cut = music[music < length]  # get_mb(key, length): the music array cut to the velocity's length
        motion.append(motion_beats[0])
        scores.append(BA(cut, motion_beats))
        lengths.append(length)
    np.savez_compressed(
        OUT, audio_int16=audio, rate=RATE, fps=FPS, music_beats=music, points=points, lengths=np.array(lengths),
        scores=np.array(scores), **{f"motion_beats_{i}": m for i, m in enumerate(motion)},
    )
    print("music beats", music, "\nscores", scores, "\nmotion", motion)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
