"""LSE-D / LSE-C equal syncnet_python's SyncNetInstance.evaluate on the same file and (random) weights
(golden data from tools/make_metric_fixtures_syncnet.py, which ran the real code)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from singer_core.errors import CheckpointError
from singer_core.evaluation.syncnet import SyncNet, load_syncnet, sync_scores, syncnet_audio, syncnet_frames
from tests.tiny_models.syncnet_weights import random_syncnet_state

from .conftest import FIXTURES

TOLERANCE = 1e-4
VIDEO = FIXTURES / "metrics" / "syncnet_crops.mp4"


@pytest.fixture(scope="module")
def golden():
    return json.loads((FIXTURES / "metrics" / "syncnet.json").read_text())


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    state = random_syncnet_state({k: v.shape for k, v in SyncNet().state_dict().items()})
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model"
    torch.save(state, path)
    return path, state


def test_random_weights_are_the_golden_ones(weights_file, golden):
    _, state = weights_file
    assert float(sum(v.double().sum() for v in state.values())) == pytest.approx(golden["weights_checksum"], rel=1e-12)


def test_face_crop_scores_equal_syncnet_python(weights_file, golden):
    net = load_syncnet(weights_file[0])
    scores = sync_scores(net, syncnet_frames(VIDEO), syncnet_audio(VIDEO))
    np.testing.assert_allclose(scores.distances, np.array(golden["distances"]), atol=TOLERANCE, rtol=0)
    assert scores.lse_d == pytest.approx(golden["lse_d"], abs=TOLERANCE)
    assert scores.lse_c == pytest.approx(golden["lse_c"], abs=TOLERANCE)
    assert scores.offset == golden["offset"]


class _Payload:
    """An arbitrary object: weights_only loading must refuse to rebuild it."""


def test_loader_refuses_other_files(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.model")
    with pytest.raises(CheckpointError, match="not a SyncNet v2 state dict"):
        load_syncnet(tmp_path / "other.model")
    torch.save({"x": _Payload()}, tmp_path / "pickled.model")
    with pytest.raises(CheckpointError, match="plain state dict"):
        load_syncnet(tmp_path / "pickled.model")


def test_evaluate_lse_face_crops_mode_and_skip_message(weights_file, golden, tmp_path, capsys):
    import shutil

    from singer_core.evaluation import evaluate

    videos = tmp_path / "gen"
    videos.mkdir()
    shutil.copy(VIDEO, videos / "clip.mp4")
    models = tmp_path / "models"
    (models / "evaluation").mkdir(parents=True)
    shutil.copy(weights_file[0], models / "evaluation" / "syncnet_v2.model")
    report = evaluate(videos, metrics="lse_d", models=models, face_crops=True, progress=False)
    assert report.columns == ["lse_d", "lse_c"]
    assert report.rows[0].values["lse_d"] == pytest.approx(golden["lse_d"], abs=TOLERANCE)
    assert report.rows[0].values["lse_c"] == pytest.approx(golden["lse_c"], abs=TOLERANCE)
    # Without the weights the metric is skipped with the file's place named; the others still run.
    report = evaluate(videos, metrics="lse,cpbd", models=tmp_path / "empty", face_crops=True, progress=False)
    assert report.columns == ["cpbd"] and "cpbd" in report.rows[0].values
    assert "evaluation/syncnet_v2.model" in report.skipped["lse"]
    assert "skipping lse" in capsys.readouterr().err


def test_face_crops_follow_the_reference_crop_geometry(tmp_path):
    """Our detector's box -> syncnet_python's crop_video geometry: a box of side 2s centred at (cx, cy) gives the
    window rows [cy - s, cy + 1.8 s), columns [cx - 1.4 s, cx + 1.4 s) of the grey-padded frame, at 224x224."""
    from singer_core.evaluation.landmarks import LandmarkModels
    from singer_core.evaluation.syncnet import face_crops
    from tests.tiny_models.face_onnx import write_antelopev2

    size = 160
    box = (0.35, 0.3, 0.65, 0.6)  # 48 px square: rows 48-96, columns 56-104; s = 24, centre (80, 72)
    models = LandmarkModels.load(write_antelopev2(tmp_path / "antelopev2", [box]))
    rng = np.random.default_rng(0)
    frames = np.full((3, size, size, 3), 60, np.uint8)
    frames[:, 48:96, 56:104] = rng.integers(0, 200, (3, 48, 48, 1), dtype=np.uint8)  # grey texture
    frames[:, 40, :] = [0, 255, 0]  # green row: 8 px above the window's top (row 48)
    frames[:, 110, :] = [255, 0, 0]  # red row: inside, the window reaches row 72 + 1.8 * 24 = 115.2
    crops = face_crops(iter(frames), models)
    assert crops.shape == (3, 224, 224, 3) and crops.dtype == np.uint8
    red = (crops[..., 2] > 200) & (crops[..., 1] < 60)  # BGR
    green = (crops[..., 1] > 200) & (crops[..., 2] < 60)
    assert red.any() and not green.any()
    rows = np.nonzero(red[0].any(axis=1))[0]
    assert abs(rows.mean() - (110.5 - 48) / 67.2 * 224) < 4  # where row 110 lands in the resized window


def test_detection_mode_end_to_end(weights_file, tmp_path):
    """Full-frame mode: our detector's crops, through the reference's video + JPEG steps, into SyncNet."""
    from singer_core.evaluation.landmarks import LandmarkModels
    from singer_core.evaluation.syncnet import _as_syncnet_input, video_sync_scores
    from tests.tiny_models.face_onnx import write_antelopev2

    crops = syncnet_frames(VIDEO)[:8]
    jpeg = _as_syncnet_input(crops)
    difference = np.abs(jpeg.astype(int) - crops.astype(int))
    assert jpeg.shape == crops.shape and 0 < difference.mean() < 8  # lossy, but the same picture
    models = LandmarkModels.load(write_antelopev2(tmp_path / "antelopev2"))
    scores = video_sync_scores(load_syncnet(weights_file[0]), VIDEO, models)
    assert scores.distances.shape == (35, 31) and np.isfinite([scores.lse_d, scores.lse_c]).all()
