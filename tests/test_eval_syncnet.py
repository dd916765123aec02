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
