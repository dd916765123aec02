"""``generate --full-frame`` and the batch columns it makes: the video has the photo's (even-rounded) size, the photo
around the window, and the paste options are checked before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from singer_core.__main__ import main
from tests.test_batch import batch_args, write_csv, write_excerpt
from tests.test_paste import textured_photo
from tests.tiny_models.face_onnx import write_antelopev2
from tests.tiny_models.models_dir import write_tiny_cli_models

DATA = Path(__file__).parent / "data"
FACE_BOX = (0.25, 0.2, 0.4, 0.35)  # relative to the photo's longer side: a face away from every border


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = write_tiny_cli_models(tmp_path_factory.mktemp("models"))
    write_antelopev2(root / "insightface" / "models" / "antelopev2", face_boxes=(FACE_BOX,))
    return root


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """An odd-sized portrait with the example face where the detector reports it, and a 0.6 s song (15 frames)."""
    root = tmp_path_factory.mktemp("inputs")
    width, height = 333, 555
    photo = textured_photo(width, height)
    x1, y1, x2, y2 = (round(v * height) for v in FACE_BOX)
    photo[y1:y2, x1:x2] = np.asarray(Image.open(DATA / "0001.png").convert("RGB").resize((x2 - x1, y2 - y1)))
    Image.fromarray(photo).save(root / "portrait.png")
    write_excerpt(root / "song.wav", 0.0, 0.6)
    return root


def frames_of(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def generate(models: Path, inputs: Path, out: Path, *extra: str) -> int:
    return main(["generate", "--image", str(inputs / "portrait.png"), "--audio", str(inputs / "song.wav"), "--out",
                 str(out), "--models", str(models), "--size", "64", "--steps", "1", "--clip-length", "8", *extra])


def test_full_frame_video_is_the_photo_with_the_window_pasted_in(models, inputs, tmp_path, capsys):
    out = tmp_path / "full.mp4"
    assert generate(models, inputs, out, "--full-frame", "--paste-color-match") == 0
    assert f"wrote {out} (15 frames" in capsys.readouterr().out
    frames = frames_of(out)
    assert frames.shape == (15, 554, 332, 3)  # 333x555, even-rounded: the last column and row dropped
    photo = np.asarray(Image.open(inputs / "portrait.png"))[:554, :332].astype(int)
    face = np.array(FACE_BOX) * 555
    centre, half = (face[:2] + face[2:]) / 2, (face[2] - face[0])  # the window: twice the face (crop_scale 2)
    outside = np.ones((554, 332), bool)
    outside[int(centre[1] - half) - 2 : int(centre[1] + half) + 3, int(centre[0] - half) - 2 : int(centre[0] + half)
            + 3] = False  # fmt: skip
    error = np.abs(frames.astype(int) - photo)
    assert error[:, outside].mean() < 2.5  # the photo, through H.264 (crf 18, yuv420p: ~1.6 on this texture)
    assert error[:, ~outside].mean() > error[:, outside].mean()  # the generated window (tiny random models)
    # The model-sized video of the same run is the window alone.
    plain = tmp_path / "plain.mp4"
    assert generate(models, inputs, plain) == 0
    assert frames_of(plain).shape == (15, 64, 64, 3)


def test_dry_run_states_the_full_frame_size_and_bad_bands_are_named(models, inputs, tmp_path, capsys):
    assert generate(models, inputs, tmp_path / "x.mp4", "--full-frame", "--dry-run") == 0
    assert "full frame: 332x554 (the photo, even-rounded)" in capsys.readouterr().out
    assert generate(models, inputs, tmp_path / "x.mp4", "--full-frame", "--paste-band", "0.9") == 2
    assert "paste band must be a number from 0 to 0.5 (got 0.9)" in capsys.readouterr().err


def test_full_frame_is_a_batch_column(models, inputs, tmp_path, capsys):
    jobs = write_csv(inputs / "jobs.csv", ["image", "audio", "name", "full_frame", "paste_band"],
                     [["portrait.png", "song.wav", "whole", "yes", "0.2"], ["portrait.png", "song.wav", "window", "",
                                                                               ""]])  # fmt: skip
    out = tmp_path / "videos"
    assert main(batch_args(jobs, out, models)) == 0
    assert frames_of(out / "whole.mp4").shape[1:] == (554, 332, 3)
    assert frames_of(out / "window.mp4").shape[1:] == (64, 64, 3)
    record = json.loads((out / ".batch" / "videos" / "whole.json").read_text())
    assert record["settings"]["full_frame"] is True and record["settings"]["paste_band"] == 0.2
    bad = write_csv(inputs / "bad.csv", ["image", "audio", "paste_band"], [["portrait.png", "song.wav", "2"]])
    assert main(batch_args(bad, tmp_path / "bad", models)) == 2
    assert "row 1 (paste_band=2): paste band must be a number from 0 to 0.5" in capsys.readouterr().err
