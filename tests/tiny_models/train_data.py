"""A tiny prepared dataset in the real format (``singer_core.data.format``) for the training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from singer_core.data.format import (
    DatasetIndex,
    VideoFeatures,
    VideoRecord,
    encode_jpeg,
    write_index,
    write_video,
)

AUDIO_LAYERS, AUDIO_HIDDEN = 4, 32  # the tiny net's audio projection input (net_tiny.json audioproj)


def _frames(rng: np.random.Generator, count: int, size: int) -> list[np.ndarray]:
    """A moving smooth colour pattern (compresses well, changes from frame to frame)."""
    y, x = np.mgrid[0:size, 0:size] / size
    phase = rng.uniform(0, 2 * np.pi, 3)
    frames = []
    for i in range(count):
        channels = [np.sin(2 * np.pi * (x + 0.05 * i) + phase[c]) * np.cos(2 * np.pi * y + phase[c]) for c in range(3)]
        frames.append(((np.stack(channels, -1) * 0.5 + 0.5) * 255).astype(np.uint8))
    return frames


def write_tiny_dataset(root: str | Path, videos: int = 1, frames: int = 12, size: int = 64, seed: int = 0) -> Path:
    root = Path(root)
    rng = np.random.default_rng(seed)
    records = []
    for v in range(videos):
        vid = f"video{v:02d}"
        record = VideoRecord(
            id=vid, source=f"/nowhere/{vid}.mp4", source_bytes=0, frames=frames, fps=25, size=size,
            audio_layers=AUDIO_LAYERS, audio_hidden=AUDIO_HIDDEN, vocal_separation=False, crop_box=[0, 0, size, size],
            face_box=[size * 0.25, size * 0.2, size * 0.75, size * 0.8], lip_box=[size * 0.4, size * 0.6, size * 0.6,
            size * 0.7], source_fps=25.0, source_width=size, source_height=size, source_sample_rate=16000,
            video_frames=frames, audio_frames=frames,
        )  # fmt: skip
        region = np.zeros((size, size), np.uint8)
        region[size // 5 : size * 4 // 5, size // 4 : size * 3 // 4] = 255
        levels = [(size // 8 >> k) ** 2 for k in range(4)]
        features = VideoFeatures(
            audio_features=rng.standard_normal((frames, AUDIO_LAYERS, AUDIO_HIDDEN)).astype(np.float32),
            face_embedding=rng.standard_normal(512).astype(np.float32),
            face_region=region,
            full_mask=tuple(np.ones((1, n), np.float32) for n in levels),
            face_mask=tuple(rng.uniform(0, 1, (1, n)).astype(np.float32) for n in levels),
            lip_mask=tuple(rng.uniform(0, 1, (1, n)).astype(np.float32) for n in levels),
            waveform=(0.1 * rng.standard_normal(frames * 640)).astype(np.float32),
        )
        write_video(root / "videos" / vid, record, [encode_jpeg(f) for f in _frames(rng, frames, size)], features)
        records.append(record)
    write_index(root, DatasetIndex(size=size, videos=records))
    return root
