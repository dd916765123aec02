"""The dataset format: writer -> reader round trip, random access, official audio windows, version checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from singer_core.data.format import (
    FORMAT_VERSION,
    INDEX_FILE,
    DatasetFormatError,
    DatasetIndex,
    Rejection,
    SingerDataset,
    VideoData,
    VideoFeatures,
    VideoRecord,
    encode_jpeg,
    write_index,
    write_video,
)

SIZE, FRAMES, LAYERS, HIDDEN = 64, 12, 3, 8


def smooth_frames(count: int, size: int) -> np.ndarray:
    """Gradients that move from frame to frame (JPEG keeps smooth images within a few levels)."""
    y, x = np.mgrid[0:size, 0:size]
    frames = [np.stack([(x * 4 + 10 * i) % 256, (y * 4) % 256, np.full_like(x, 20 * i % 256)], -1) for i in
              range(count)]
    return np.asarray(frames, dtype=np.uint8)


def record(frames: int = FRAMES) -> VideoRecord:
    return VideoRecord(id="clip", source="/videos/clip.mp4", source_bytes=123, frames=frames, fps=25, size=SIZE,
                       audio_layers=LAYERS, audio_hidden=HIDDEN, vocal_separation=False, crop_box=[0, 0, 100, 100],
                       face_box=[10.0, 10.0, 50.0, 50.0], lip_box=[20.0, 35.0, 40.0, 45.0], source_fps=30.0,
                       source_width=100, source_height=120, source_sample_rate=44100, video_frames=frames + 1,
                       audio_frames=frames, quality={"blur": 123.0})


def features(frames: int = FRAMES) -> VideoFeatures:
    rng = np.random.default_rng(1)
    levels = [(SIZE // (8 << k)) ** 2 for k in range(4)]
    masks = [tuple(rng.random((1, n), dtype=np.float32) for n in levels) for _ in range(3)]
    region = np.zeros((SIZE, SIZE), np.uint8)
    region[10:40, 12:50] = 255
    return VideoFeatures(rng.standard_normal((frames, LAYERS, HIDDEN)).astype(np.float32),
                         rng.standard_normal(512).astype(np.float32), region, *masks,
                         rng.standard_normal(16000).astype(np.float32))


@pytest.fixture
def dataset(tmp_path):
    pixels = smooth_frames(FRAMES, SIZE)
    feats = features()
    write_video(tmp_path / "videos" / "clip", record(), [encode_jpeg(f) for f in pixels], feats)
    rejected = Rejection(id="bad", source="/videos/bad.mp4", reasons=["no_face"], message="no face")
    write_index(tmp_path, DatasetIndex(size=SIZE, settings={"crop_ratio": 0.8}, videos=[record()], rejected=[rejected]))
    return tmp_path, pixels, feats


def test_round_trip_of_every_field(dataset):
    root, pixels, feats = dataset
    data = SingerDataset(root)
    assert len(data) == 1 and data.size == SIZE
    assert data.rejected[0].reasons == ["no_face"]
    video = data[0]
    assert video.record == record()
    frames = video.frames(0, FRAMES)
    assert frames.shape == (FRAMES, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - pixels).max() <= 12  # JPEG q95 on gradients
    assert torch.equal(video.audio_features(0, FRAMES), torch.from_numpy(feats.audio_features))
    assert torch.equal(video.face_embedding, torch.from_numpy(feats.face_embedding))
    assert torch.equal(video.face_region, torch.from_numpy(feats.face_region / 255.0).float()[None].repeat(3, 1, 1))
    for kind in ("full", "face", "lip"):
        for level, mask in enumerate(getattr(video.masks, kind)):
            assert torch.equal(mask, torch.from_numpy(getattr(feats, f"{kind}_mask")[level]))
    assert torch.equal(video.waveform, torch.from_numpy(feats.waveform))


def test_consecutive_frames_from_an_offset_equal_the_full_read(dataset):
    video = SingerDataset(dataset[0])[0]
    everything = video.frames(0, FRAMES)
    np.testing.assert_array_equal(video.frames(5, 4), everything[5:9])
    np.testing.assert_array_equal(video.frames(FRAMES - 1, 1), everything[-1:])
    pixels = video.pixel_values(5, 4)
    assert pixels.shape == (4, 3, SIZE, SIZE) and pixels.min() >= -1 and pixels.max() <= 1
    torch.testing.assert_close(pixels, torch.from_numpy(everything[5:9]).permute(0, 3, 1, 2).float() / 127.5 - 1)
    with pytest.raises(IndexError):
        video.frames(FRAMES - 2, 3)


def test_audio_windows_are_the_official_indexing(dataset):
    """Official dataset: ``audio_emb[arange(start, start+n)[:, None] + arange(-2, 3)]``; ours clamps at the ends."""
    root, _, feats = dataset
    video = SingerDataset(root)[0]
    emb = torch.from_numpy(feats.audio_features)
    start, count = 3, 6
    official = emb[torch.arange(start, start + count)[:, None] + torch.arange(-2, 3)[None, :]]
    assert torch.equal(video.audio_windows(start, count), official)
    edge = video.audio_windows(0, 2)
    assert torch.equal(edge[0, 0], emb[0]) and torch.equal(edge[0, 1], emb[0]) and torch.equal(edge[1, 4], emb[3])
    sample = video.clip(start, count)
    assert sample.pixels.shape == (count, 3, SIZE, SIZE)
    assert sample.audio_windows.shape == (count, 5, LAYERS, HIDDEN)
    assert [m.shape for m in sample.masks.lip] == [(1, 64), (1, 16), (1, 4), (1, 1)]


def test_wrong_format_or_version_is_refused(dataset, tmp_path_factory):
    root = dataset[0]
    index = json.loads((root / INDEX_FILE).read_text())
    index["version"] = FORMAT_VERSION + 1
    (root / INDEX_FILE).write_text(json.dumps(index))
    with pytest.raises(DatasetFormatError, match="version"):
        SingerDataset(root)
    with pytest.raises(DatasetFormatError, match="prepare"):
        SingerDataset(tmp_path_factory.mktemp("empty"))


def test_incomplete_video_folder_is_named(tmp_path):
    (tmp_path / "v").mkdir()
    with pytest.raises(DatasetFormatError, match="record.json"):
        VideoData(tmp_path / "v")


def test_writer_checks_frame_and_audio_counts(tmp_path):
    with pytest.raises(DatasetFormatError, match="audio rows"):
        write_video(tmp_path / "v", record(), [encode_jpeg(f) for f in smooth_frames(FRAMES, SIZE)], features(5))

