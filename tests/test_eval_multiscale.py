"""MS-Sync: definition checks on synthetic landmark tracks and songs."""

from __future__ import annotations

import numpy as np
import pytest

from singer_core.evaluation.multiscale import (
    audio_envelope,
    columns,
    head_speed,
    mouth_opening,
    ms_sync,
    smooth_subsample,
)
from tests.tiny_models.face_onnx import landmark_template

FPS, RATE = 25.0, 16000


def _track(opening: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Template face (200 px) whose inner lips open by ``opening`` (relative) and which moves by ``shift`` px."""
    base = landmark_template() * 200
    points = np.repeat(base[None], len(opening), axis=0)
    centre = base[64:72].mean(axis=0)
    points[:, 64:72, 1] = centre[1] + (base[64:72, 1] - centre[1])[None] * (1 + 4 * opening[:, None])
    points[:, :, 0] += shift[:, None]
    return points


def _song(loudness: np.ndarray) -> np.ndarray:
    t = np.arange(int(len(loudness) / FPS * RATE)) / RATE
    per_sample = np.repeat(loudness, RATE // int(FPS))[: len(t)]
    return per_sample * np.sin(2 * np.pi * 330 * t)


def test_envelope_and_smoothing_definitions():
    audio = np.arange(1280, dtype=np.float64)
    env = audio_envelope(audio, RATE, FPS, 3)
    assert env[0] == pytest.approx(np.sqrt(np.mean(audio[:640] ** 2)))
    assert env[2] == 0.0  # past the end of the audio
    np.testing.assert_allclose(smooth_subsample(np.arange(10.0), 4, 2), [1.5, 3.5, 5.5, 7.5])
    assert columns()[:4] == ["ms_sync_mouth_0.2s", "ms_sync_mouth_0.4s", "ms_sync_mouth_0.8s", "ms_sync_mouth_1.6s"]


def test_mouth_and_head_signals_are_scale_free():
    opening = np.linspace(0, 0.5, 6)
    points = _track(opening, np.arange(6) * 3.0)
    np.testing.assert_allclose(mouth_opening(points * 2), mouth_opening(points))
    assert np.all(np.diff(mouth_opening(points)) > 0)
    np.testing.assert_allclose(head_speed(points * 2), head_speed(points))
    assert head_speed(points)[0] == head_speed(points)[1]


def test_ms_sync_follows_loudness_at_every_scale():
    frames = 400
    t = np.arange(frames) / FPS
    loudness = 0.5 + 0.4 * np.sin(2 * np.pi * 0.3 * t) + 0.05 * np.sin(2 * np.pi * 2.1 * t)
    rng = np.random.default_rng(0)
    in_phase = ms_sync(_track(loudness, np.cumsum(rng.normal(size=frames))), _song(loudness), RATE, FPS)
    assert set(in_phase) == set(columns())
    for width in ("0.2s", "0.4s", "0.8s", "1.6s"):
        assert in_phase[f"ms_sync_mouth_{width}"] > 0.95
        assert abs(in_phase[f"ms_sync_head_{width}"]) < 0.5
    anti = ms_sync(_track(1 - loudness, np.zeros(frames)), _song(loudness), RATE, FPS)
    assert anti["ms_sync_mouth_0.8s"] < -0.95
    assert "ms_sync_head_0.2s" not in anti  # a head that never moves has no measurable synchrony


def test_ms_sync_short_video_keeps_only_short_scales():
    frames = 60  # 2.4 s: 1.6 s windows leave too few samples
    loudness = np.abs(np.sin(np.arange(frames) / 3.0))
    values = ms_sync(_track(loudness, np.sin(np.arange(frames))), _song(loudness), RATE, FPS)
    assert "ms_sync_mouth_0.2s" in values and "ms_sync_mouth_1.6s" not in values
    with pytest.raises(ValueError, match="too short"):
        ms_sync(_track(loudness[:10], np.zeros(10)), _song(loudness[:10]), RATE, FPS)
