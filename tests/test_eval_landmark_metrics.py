"""The landmark metrics end to end through evaluate(), on the tiny insightface stand-ins
(tests/tiny_models/face_onnx.py: a fixed face box, fixed landmarks): plumbing, skip and error reporting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from singer_core.evaluation import evaluate
from singer_core.evaluation.landmarks import LandmarkModels, track_landmarks
from singer_core.video_io import write_video
from tests.tiny_models.face_onnx import DEFAULT_FACE_BOX, landmark_template, write_antelopev2

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # insightface's own skimage call
SIZE = 128


def _video(path, frames: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    clip = np.full((frames, SIZE, SIZE, 3), 120, np.uint8)
    x1, y1, x2, y2 = (int(v * SIZE) for v in DEFAULT_FACE_BOX)
    clip[:, y1:y2, x1:x2] = rng.integers(0, 256, (frames, y2 - y1, x2 - x1, 3), dtype=np.uint8)
    t = np.arange(int(frames / 25 * 16000)) / 16000
    pulses = (np.modf(t * 4)[0] < 0.1).astype(np.float64)  # a beat every 0.25 s, so music beats exist
    song = torch.from_numpy((0.3 * np.sin(2 * np.pi * 220 * t) * (0.2 + pulses)).astype(np.float32))[None]
    write_video(path, torch.from_numpy(clip).float() / 255, 25, song, 16000)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    write_antelopev2(root / "insightface" / "models" / "antelopev2")
    return root


def test_track_landmarks_places_the_template_in_the_box(models, tmp_path):
    from singer_core.evaluation.media import iter_frames

    _video(tmp_path / "a.mp4", frames=3)
    face = LandmarkModels.load(models / "insightface" / "models" / "antelopev2")
    track = track_landmarks(face, iter_frames(tmp_path / "a.mp4"))
    assert track.shape == (3, 106, 2)
    x1, y1, x2, y2 = (v * SIZE for v in DEFAULT_FACE_BOX)
    side = max(x2 - x1, y2 - y1)  # the landmark model works on the square around the box
    expected = (landmark_template() - 0.5) * side + [(x1 + x2) / 2, (y1 + y2) / 2]
    np.testing.assert_allclose(track[0], expected, atol=2.0)


def test_evaluate_landmark_metrics(models, tmp_path):
    for folder in ("gen", "ref"):
        _video(tmp_path / folder / "clip.mp4")
    report = evaluate(tmp_path / "gen", tmp_path / "ref", metrics="lmd,diversity,bas,ms_sync", models=models,
                      progress=False)
    row = report.rows[0]
    assert row.values["lmd"] == pytest.approx(0.0, abs=1e-6)  # same video, static landmarks
    assert row.values["diversity"] == pytest.approx(0.0, abs=1e-6)
    # Static landmarks have no motion beat and no motion to correlate: reported per video, not a crash.
    assert "no motion beat" in row.errors["bas"]
    assert "ms_sync" in row.errors
    assert "- clip: bas failed" in report.to_markdown()


def test_landmark_metrics_skipped_without_face_models(tmp_path):
    _video(tmp_path / "gen" / "clip.mp4", frames=4)
    report = evaluate(tmp_path / "gen", metrics="diversity,cpbd", models=tmp_path / "nothing", progress=False)
    assert report.columns == ["cpbd"]
    assert "insightface/models/antelopev2/scrfd_10g_bnkps.onnx" in report.skipped["diversity"]
