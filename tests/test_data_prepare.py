"""``python -m singer_core.data prepare`` on tiny models: the real singing video, generated videos that hit
every rejection reason, 30 -> 25 fps, resuming, worker processes, and what the model needs from a record.

The tiny face detector (tests/tiny_models/face_onnx.py) reports a face at a fixed box when the image has
texture inside it, so the generated videos put noise where faces should be found. For the real video the
detector's box is set around the singer's face (the tiny models cannot find real faces by themselves).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from singer_core.audio.features import extract_audio_features
from singer_core.audio.wav2vec import load_wav2vec
from singer_core.audio.waveform import prepare_waveform, read_audio_file
from singer_core.data import SingerDataset
from singer_core.data.cli import main
from singer_core.data.format import INDEX_FILE
from singer_core.data.video import probe_video
from singer_core.video_io import write_video
from tests.conftest import DATA, fixture_net
from tests.tiny_models.face_onnx import write_antelopev2
from tests.tiny_models.separator import write_tiny_mdx_onnx
from tests.tiny_models.wav2vec import write_tiny_wav2vec_folder

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # insightface's own skimage call

REAL_VIDEO = DATA / "0001_result.mp4"
PHOTO_FACE_BOX = (0.3, 0.22, 0.72, 0.82)  # around the singer's face in 0001_result.mp4
SIDE = 160  # generated videos are SIDE x SIDE
FACE = (0.3, 0.25, 0.7, 0.75)  # the singer
SECOND = (0.02, 0.02, 0.22, 0.22)  # a second face, 20 % of the singer's area
SMALL = (0.8, 0.8, 0.9, 0.9)  # a face 16 px high
# two patches showing the frame number (low and high octal digit x 32 grey levels): inside the crop
# window, outside every face box
MARKERS = (np.s_[128:146, 20:38], np.s_[128:146, 44:62])
SIZE = 64


def write_models(root: Path, face_boxes) -> Path:
    write_tiny_wav2vec_folder(root / "wav2vec2" / "wav2vec2-tiny")
    write_antelopev2(root / "insightface" / "models" / "antelopev2", face_boxes)
    return root


def singing(seconds: float, rate: int = 44100, channels: int = 2, amplitude: float = 0.3) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    tone = amplitude * (torch.sin(2 * torch.pi * 220 * t) + 0.5 * torch.sin(2 * torch.pi * 447 * t)) / 1.5
    return tone.repeat(channels, 1)


def face_frames(count: int, boxes, seed: int = 0, smooth: bool = False, background: int = 120) -> np.ndarray:
    """Grey frames with noise in ``boxes`` (blurry blobs when ``smooth``) and the frame number in MARKERS."""
    import cv2

    rng = np.random.default_rng(seed)
    frames = np.full((count, SIDE, SIDE, 3), background, np.uint8)
    for i, frame in enumerate(frames):
        for x1, y1, x2, y2 in boxes:
            region = np.s_[int(y1 * SIDE) : int(y2 * SIDE), int(x1 * SIDE) : int(x2 * SIDE)]
            h, w = frame[region].shape[:2]
            if smooth:
                blobs = cv2.resize(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8), (w, h),
                                   interpolation=cv2.INTER_CUBIC)
                frame[region] = cv2.GaussianBlur(blobs, (0, 0), 3)
            else:
                frame[region] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if background:
            frame[MARKERS[0]], frame[MARKERS[1]] = 32 * (i % 8), 32 * (i // 8)
    return frames


def write_clip(path: Path, frames: np.ndarray, fps: int, audio: torch.Tensor | None, rate: int = 44100) -> Path:
    pixels = torch.from_numpy(frames).float().add(0.5).div(255)  # +0.5: write_video truncates x * 255
    return write_video(path, pixels, fps, audio, rate if audio is not None else None, crf=12)


def write_webm(path: Path, frames: np.ndarray, fps: int, audio: torch.Tensor) -> Path:
    """VP8 video + Opus audio (48 kHz) in WebM."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libvpx", rate=fps)
        video.width, video.height, video.pix_fmt = SIDE, SIDE, "yuv420p"
        video.options = {"crf": "4", "b:v": "2M"}
        sound = container.add_stream("libopus", rate=48000)
        sound.layout = "stereo"
        for image in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode(None))
        source = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio.numpy()), format="fltp", layout="stereo")
        source.sample_rate = 48000
        resampler = av.AudioResampler(format="flt", layout="stereo", rate=48000, frame_size=960)
        for frame in [*resampler.resample(source), *resampler.resample(None)]:
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    return path


@pytest.fixture(scope="module")
def synthetic_models(tmp_path_factory) -> Path:
    return write_models(tmp_path_factory.mktemp("models"), [FACE, SECOND, SMALL])


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """One good video (30 fps) and one video per rejection reason, in one folder."""
    folder = tmp_path_factory.mktemp("videos")
    good = face_frames(50, [FACE])
    made = {
        "good": write_clip(folder / "good.mp4", face_frames(60, [FACE]), 30, singing(2.0)),
        "webm": write_webm(folder / "good_vp8.webm", face_frames(48, [FACE], seed=1), 24, singing(2.0, rate=48000)),
        "blank": write_clip(folder / "blank.mkv", face_frames(50, [], background=0), 25, singing(2.0)),
        "several": write_clip(folder / "several.mov", face_frames(50, [FACE, SECOND]), 25, singing(2.0)),
        "small": write_clip(folder / "small.mp4", face_frames(50, [SMALL]), 25, singing(2.0)),
        "blurry": write_clip(folder / "blurry.mp4", face_frames(50, [FACE], smooth=True), 25, singing(2.0)),
        "silent": write_clip(folder / "silent.mp4", good, 25, torch.zeros(2, 88200)),
        "short_audio": write_clip(folder / "short_audio.mp4", good, 25, singing(1.5, rate=48000, channels=1), 48000),
        "no_audio": write_clip(folder / "no_audio.mp4", good, 25, None),
    }
    made["corrupt"] = folder / "corrupt.mp4"
    made["corrupt"].write_bytes(np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (folder / "notes.txt").write_text("not a video: ignored when a folder is given")
    return made


@pytest.fixture(scope="module")
def prepared(synthetic_models, videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset") / "data"
    code = main(["prepare", str(videos["good"].parent), "--out", str(out), "--models", str(synthetic_models),
                 "--size", str(SIZE), "--quiet"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    models = write_models(tmp_path_factory.mktemp("real_models"), [PHOTO_FACE_BOX])
    out = tmp_path_factory.mktemp("real") / "data"
    assert main(["prepare", str(REAL_VIDEO), "--out", str(out), "--models", str(models), "--size", str(SIZE),
                 "--quiet"]) == 0
    return out, models


def by_name(out: Path) -> tuple[dict, dict]:
    index = json.loads((out / INDEX_FILE).read_text())
    accepted = {Path(v["source"]).name: v for v in index["videos"]}
    rejected = {Path(r["source"]).name: r for r in index["rejected"]}
    return accepted, rejected


def test_real_singing_video_gives_aligned_frames_and_features(real):
    out, models = real
    video = SingerDataset(out)[0]
    record = video.record
    assert (record.frames, record.video_frames, record.fps, record.size) == (51, 51, 25, SIZE)
    waveform, rate = read_audio_file(REAL_VIDEO)  # the file-reading entry of inference ...
    waveform = waveform[:, : round(probe_video(REAL_VIDEO).audio_duration * rate)]  # ... cut to the stream duration
    expected = extract_audio_features(prepare_waveform(waveform, rate),
                                      load_wav2vec(next((models / "wav2vec2").iterdir())), clip_length=0)
    assert record.audio_frames == expected.audio_length == 51
    torch.testing.assert_close(video.audio_features(0, 51), expected.embeddings[:51], rtol=0, atol=1e-5)
    with av.open(str(REAL_VIDEO)) as container:
        source = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    x1, y1, x2, y2 = record.crop_box
    assert x2 - x1 == y2 - y1 == round(0.8 * 512)
    for index in (0, 25, 50):
        crop = Image.fromarray(source[index][y1:y2, x1:x2]).resize((SIZE, SIZE), Image.BILINEAR)
        error = np.abs(video.frames(index, 1)[0].astype(int) - np.asarray(crop, dtype=int))
        assert error.mean() < 2.0, f"frame {index} differs from the cropped source frame"


def test_record_feeds_the_model_inputs(real):
    """The stored conditions are what the pipeline's condition builder and audio projection take."""
    from singer_core.pipeline.conditions import build_conditions, project_audio
    from singer_core.pipeline.inputs import ReferenceInputs

    video = SingerDataset(real[0])[0]
    sample = video.clip(10, 14)
    reference = ReferenceInputs(pixels=video.pixel_values(3, 1)[0], face_embedding=sample.face_embedding,
                                face_region=sample.face_region, full_mask=sample.masks.full,
                                face_mask=sample.masks.face, lip_mask=sample.masks.lip)
    reference.validate(SIZE, SIZE)
    assert torch.isfinite(sample.face_embedding).all() and sample.face_embedding.abs().sum() > 0
    net = fixture_net()
    conditions = build_conditions(net, reference, 14, torch.device("cpu"), torch.float32)
    assert [m.shape for m in conditions.masks.lip] == [(14, 64), (14, 16), (14, 4), (14, 1)]
    tokens = project_audio(net, sample.audio_windows, torch.device("cpu"), torch.float32)
    assert tokens.shape[:2] == (14, 32)
    # the face region covers the recorded face box; the lip mask peaks inside the lip box
    ys, xs = np.nonzero(video.face_region[0].numpy() > 0.5)
    fx1, fy1, fx2, fy2 = video.record.face_box
    assert xs.min() <= fx1 + 1 and xs.max() >= fx2 - 2 and ys.min() <= fy1 + 1 and ys.max() >= fy2 - 2
    lip = video.masks.lip[0].reshape(SIZE // 8, SIZE // 8)
    peak_y, peak_x = divmod(int(lip.argmax()), SIZE // 8)
    lx1, ly1, lx2, ly2 = (v / 8 for v in video.record.lip_box)
    assert lx1 - 1 <= peak_x <= lx2 and ly1 - 1 <= peak_y <= ly2


def test_every_rejection_reason_is_recorded(prepared, videos):
    accepted, rejected = by_name(prepared)
    assert set(accepted) == {"good.mp4", "good_vp8.webm"}
    assert accepted["good_vp8.webm"]["frames"] == 50 and accepted["good_vp8.webm"]["source_fps"] == 24.0
    expected = {"blank.mkv": "no_face", "several.mov": "several_faces", "small.mp4": "face_too_small",
                "blurry.mp4": "blurry", "silent.mp4": "silence", "short_audio.mp4": "length_mismatch",
                "no_audio.mp4": "no_audio", "corrupt.mp4": "corrupt"}
    assert {name: r["reasons"] for name, r in rejected.items()} == {k: [v] for k, v in expected.items()}
    for name, entry in rejected.items():
        assert name in entry["message"]
    assert "no audio track" in rejected["no_audio.mp4"]["message"]
    assert "silent" in rejected["silent.mp4"]["message"]


def test_30_fps_input_gives_25_fps_frames_aligned_with_the_audio(prepared):
    video = next(v for v in SingerDataset(prepared) if v.record.source.endswith("good.mp4"))
    record = video.record
    # 2 s of song: 50 frames of audio features, aligned with the 50 frames of video
    assert (record.frames, record.video_frames, record.audio_frames) == (50, 50, 50)
    assert record.source_fps == 30.0 and video.audio_features(0, 50).shape == (50, 4, 32)
    # output frame k shows source frame round(k * 30 / 25): read the frame number painted in MARKER
    x1, y1, x2, _ = record.crop_box
    scale = SIZE / (x2 - x1)
    frames = video.frames(0, 50).astype(float)
    digits = []
    for marker in MARKERS:
        row, col = int((marker[0].start + 9 - y1) * scale), int((marker[1].start + 9 - x1) * scale)
        digits.append(np.round(frames[:, row - 1 : row + 2, col - 1 : col + 2].mean(axis=(1, 2, 3)) / 32))
    shown = digits[0] + 8 * digits[1]
    np.testing.assert_array_equal(shown, np.floor(np.arange(50) * 1.2 + 0.5))


def test_rerun_is_a_no_op(prepared, videos, synthetic_models, capsys, tmp_path):
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in prepared.rglob("*") if p.is_file()}
    assert main(["prepare", str(videos["good"].parent), "--out", str(prepared), "--models", str(synthetic_models),
                 "--size", str(SIZE), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "this run: 0 accepted, 0 rejected, 10 already done" in table
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in prepared.rglob("*") if p.is_file()}
    index = prepared / INDEX_FILE
    assert after.keys() == before.keys()
    assert {p: v for p, v in after.items() if p != index} == {p: v for p, v in before.items() if p != index}
    assert after[index][1] == before[index][1]  # dataset.json rewritten with the same content


def test_other_settings_are_refused(prepared, videos, synthetic_models, capsys):
    assert main(["prepare", str(videos["good"]), "--out", str(prepared), "--models", str(synthetic_models),
                 "--size", "128", "--quiet"]) == 2
    assert "size: 64 -> 128" in capsys.readouterr().err


def same_safetensors(a: Path, b: Path) -> None:
    """Same tensors and metadata (safetensors does not keep the metadata's order in the file, so the bytes
    may differ). Audio features may differ in the last float bits: the thread count per process differs."""
    with safe_open(str(a), "numpy") as left, safe_open(str(b), "numpy") as right:
        assert left.metadata() == right.metadata() and sorted(left.keys()) == sorted(right.keys())
        for key in left.keys():
            if key == "audio_features":
                np.testing.assert_allclose(left.get_tensor(key), right.get_tensor(key), rtol=0, atol=1e-5)
            else:
                np.testing.assert_array_equal(left.get_tensor(key), right.get_tensor(key), err_msg=f"{a}: {key}")


@pytest.mark.slow  # two worker processes each import torch, transformers and insightface
def test_two_workers_give_the_same_dataset(videos, synthetic_models, tmp_path):
    inputs = [str(videos[name]) for name in ("good", "no_audio", "corrupt")]
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        assert main(["prepare", *inputs, "--out", str(out), "--models", str(synthetic_models), "--size", str(SIZE),
                     "--workers", str(workers), "--quiet"]) == 0
        outs.append(out)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    assert len(files) == 1 + 3 + 2  # index, accepted video (record, frames, features), 2 rejections
    for name in files:
        if name.suffix == ".safetensors":
            same_safetensors(outs[0] / name, outs[1] / name)
        else:
            assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_a_failing_video_is_recorded_and_retried(videos, synthetic_models, tmp_path, monkeypatch, capsys):
    import singer_core.data.run as run

    real_prepare = run.prepare_video

    def flaky(path, *args):
        if path.name == "good.mp4":
            raise MemoryError("out of memory")
        return real_prepare(path, *args)

    monkeypatch.setattr(run, "prepare_video", flaky)
    out = tmp_path / "data"
    argv = ["prepare", str(videos["good"]), str(videos["no_audio"]), "--out", str(out), "--models",
            str(synthetic_models), "--size", str(SIZE), "--quiet"]
    assert main(argv) == 0
    accepted, rejected = by_name(out)
    assert rejected["good.mp4"]["reasons"] == ["error"] and "MemoryError" in rejected["good.mp4"]["message"]
    assert rejected["no_audio.mp4"]["reasons"] == ["no_audio"]
    monkeypatch.setattr(run, "prepare_video", real_prepare)
    capsys.readouterr()
    assert main(argv) == 0
    assert "this run: 1 accepted, 0 rejected, 1 already done" in capsys.readouterr().out
    accepted, rejected = by_name(out)
    assert set(accepted) == {"good.mp4"} and set(rejected) == {"no_audio.mp4"}


def test_vocal_separation_is_used_when_the_model_is_there(videos, synthetic_models, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(synthetic_models, models)
    write_tiny_mdx_onnx(models / "audio_separator" / "Kim_Vocal_2.onnx", dim_t=64)
    out = tmp_path / "data"
    assert main(["prepare", str(videos["good"]), "--out", str(out), "--models", str(models), "--size", str(SIZE),
                 "--quiet"]) == 0
    video = SingerDataset(out)[0]
    assert video.record.vocal_separation and "voiced_share_vocals" in video.record.quality
    plain = tmp_path / "plain"
    assert main(["prepare", str(videos["good"]), "--out", str(plain), "--models", str(models), "--size", str(SIZE),
                 "--no-vocal-separation", "--quiet"]) == 0
    assert not SingerDataset(plain)[0].record.vocal_separation
    index = json.loads((out / INDEX_FILE).read_text())
    assert index["settings"]["models"] == {"wav2vec": "wav2vec2-tiny", "face": "antelopev2",
                                           "separator": "Kim_Vocal_2.onnx"}


def test_an_in_process_run_gives_back_the_callers_thread_count(videos, synthetic_models, tmp_path, monkeypatch):
    """One worker runs in the caller's process with a thread per core; afterwards the caller has its own thread
    count again (torch's thread count picks the CPU kernels, and so the last bits, of what the caller runs next)."""
    monkeypatch.setattr(os, "cpu_count", lambda: 3)  # the run itself takes 3 threads
    torch.set_num_threads(1)
    assert main(["prepare", str(videos["no_audio"]), "--out", str(tmp_path / "d"), "--models", str(synthetic_models),
                 "--size", str(SIZE), "--quiet"]) == 0
    assert torch.get_num_threads() == 1


def test_missing_models_and_inputs_are_named(tmp_path, videos, capsys):
    assert main(["prepare", str(videos["good"]), "--out", str(tmp_path / "d"), "--models", str(tmp_path)]) == 2
    assert "wav2vec2" in capsys.readouterr().err
    write_tiny_wav2vec_folder(tmp_path / "wav2vec2" / "tiny")
    assert main(["prepare", str(videos["good"]), "--out", str(tmp_path / "d"), "--models", str(tmp_path)]) == 2
    assert "scrfd_10g_bnkps.onnx" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "d"), "--models", str(tmp_path)]) == 2
    assert "nope.mp4" in capsys.readouterr().err
    assert main(["prepare", str(videos["good"]), "--out", str(tmp_path / "d"), "--models", str(tmp_path),
                 "--crop-ratio", "1.5"]) == 2
    assert "--crop-ratio" in capsys.readouterr().err
