"""evaluate_clip: the in-memory evaluation behind the SINGER Evaluate node (host-independent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from singer_core.errors import InputError
from singer_core.evaluation.clip import evaluate_clip
from singer_core.evaluation.fidelity import psnr_frames
from singer_core.evaluation.landmarks import LandmarkModels
from singer_core.evaluation.sharpness import cpbd, to_gray
from tests.tiny_models.face_onnx import DEFAULT_FACE_BOX, write_antelopev2

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _frames(seed: int, frames: int = 6, size: int = 128) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    clip = np.full((frames, size, size, 3), 0.5, np.float32)
    x1, y1, x2, y2 = (int(v * size) for v in DEFAULT_FACE_BOX)
    clip[:, y1:y2, x1:x2] = rng.random((frames, y2 - y1, x2 - x1, 3))
    return torch.from_numpy(clip)


def test_weight_free_metrics_without_face_models():
    gen, ref = _frames(0), _frames(1)
    result = evaluate_clip(gen, 25.0, reference=ref)
    pixels = (gen.numpy() * 255).astype(np.uint8)
    ref_pixels = (ref.numpy() * 255).astype(np.uint8)
    assert result.values["psnr"] == pytest.approx(psnr_frames(pixels, ref_pixels).mean())
    assert result.values["cpbd"] == pytest.approx(np.mean([cpbd(to_gray(f)) for f in pixels]))
    assert "no face analyzer" in result.skipped["diversity/bas/ms_sync"]
    text = result.to_text()
    assert text.splitlines()[0].startswith("psnr: ") and "skipped (no face analyzer connected" in text
    assert "psnr/ssim" in evaluate_clip(gen, 25.0).skipped
    with pytest.raises(InputError, match=r"\[frames, height, width, 3\]"):
        evaluate_clip(gen[0], 25.0)


def test_landmark_metrics_with_face_models(tmp_path):
    models = LandmarkModels.load(write_antelopev2(tmp_path / "antelopev2"))
    song = (np.sin(np.arange(16000) / 10) * 0.3).astype(np.float32), 16000
    result = evaluate_clip(_frames(2), 25.0, audio=song, face_models=models)
    assert result.values["diversity"] == pytest.approx(0.0, abs=1e-6)  # the tiny models' landmarks do not move
    assert "bas" in result.skipped and "ms_sync" in result.skipped
    no_audio = evaluate_clip(_frames(2), 25.0, face_models=models)
    assert no_audio.skipped["bas/ms_sync"] == "no audio connected"


def test_metrics_that_cannot_run_on_the_clip_are_listed(tmp_path):
    models = LandmarkModels.load(write_antelopev2(tmp_path / "antelopev2"))
    one_frame = evaluate_clip(_frames(3, frames=1), 25.0, face_models=models)
    assert "at least two frames" in one_frame.skipped["diversity"] and "cpbd" in one_frame.values
    blank = evaluate_clip(torch.full((3, 128, 128, 3), 0.5), 25.0, face_models=models)  # no face anywhere
    assert "no face was found" in blank.skipped["diversity/bas/ms_sync"]
