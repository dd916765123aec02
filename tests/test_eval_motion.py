"""BAS against Bailando's own code (fixture from tools/make_metric_fixtures_bas.py); LMD and Diversity definitions."""

from __future__ import annotations

import numpy as np
import pytest

from singer_core.evaluation.motion import bas, beat_align, diversity, lmd, motion_beats, music_beats

from .conftest import FIXTURES


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(FIXTURES / "metrics" / "bas.npz"))


def test_music_beats_match_bailando_extractor(golden):
    audio = golden["audio_int16"].astype(np.float32) / 32768
    beats = music_beats(audio, int(golden["rate"]), float(golden["fps"]))
    np.testing.assert_array_equal(beats, golden["music_beats"])


@pytest.mark.parametrize("index", [0, 1, 2])
def test_motion_beats_and_score_match_bailando(golden, index):
    points = golden["points"][index]
    motion, length = motion_beats(points)
    np.testing.assert_array_equal(motion, golden[f"motion_beats_{index}"])
    assert length == golden["lengths"][index]
    music = golden["music_beats"]
    assert beat_align(music[music < length], motion) == pytest.approx(golden["scores"][index], abs=1e-12)
    audio = golden["audio_int16"].astype(np.float32) / 32768
    assert bas(points, audio, int(golden["rate"]), 25.0) == pytest.approx(golden["scores"][index], abs=1e-12)


def test_beat_align_edge_cases():
    assert beat_align([10, 20], [10, 20]) == pytest.approx(1.0)
    assert beat_align([10], [13]) == pytest.approx(np.exp(-9 / 18))
    with pytest.raises(ValueError, match="no music beat"):
        beat_align([], [3])
    with pytest.raises(ValueError, match="no motion beat"):
        beat_align([3], [])


def test_lmd_is_translation_invariant_and_in_pixels():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(6, 106, 2)) * 20 + 100
    assert lmd(ref + 37.0, ref) == pytest.approx(0.0, abs=1e-12)
    moved = ref.copy()
    moved[:, 52:72, 0] += np.where(np.arange(20) < 10, 1.0, -1.0)  # mouth points 1 px apart after centring
    assert lmd(moved, ref) == pytest.approx(1.0)
    assert lmd(ref[:4] * 2, ref, scale=2.0) == pytest.approx(0.0, abs=1e-12)


def test_diversity_is_std_over_time():
    points = np.zeros((4, 106, 2))
    points[:, :, 0] = np.array([0, 2, 0, 2])[:, None]
    assert diversity(points) == pytest.approx(0.5)  # x std 1, y std 0
    assert diversity(np.repeat(points[:1], 5, axis=0)) == 0.0


def test_head_bas_ignores_the_mouth(golden):
    from singer_core.evaluation.landmarks import HEAD_POINTS
    from singer_core.evaluation.motion import head_bas

    rng = np.random.default_rng(3)
    frames = int(golden["lengths"][0]) + 1
    t = np.arange(frames)[:, None, None]
    face = rng.normal(size=(1, 106, 2)) * 30 + 4 * np.sin(2 * np.pi * t / 12.0)  # the head sways
    talking = face.copy()
    talking[:, 52:72] += rng.normal(size=(frames, 20, 2)) * 3  # the mouth moves on its own
    audio = golden["audio_int16"].astype(np.float32) / 32768
    rate = int(golden["rate"])
    assert head_bas(talking, audio, rate, 25.0) == head_bas(face, audio, rate, 25.0)
    assert head_bas(face, audio, rate, 25.0) == bas(face[:, HEAD_POINTS], audio, rate, 25.0)
