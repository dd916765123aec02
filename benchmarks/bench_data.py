"""Training-data storage and reading speed: one JSON line per measurement.

    python benchmarks/bench_data.py [--video tests/data/0001_result.mp4] [--models MODELS --size 512]

* ``storage``: bytes per frame, encode and decode time and PSNR of each candidate frame storage (raw uint8,
  PNG, JPEG q90/q95 4:4:4) on the video's decoded frames (the numbers behind docs/dataset_format.md).
* with ``--models``: ``prepare`` (wall time of ``python -m singer_core.data prepare`` on the video, dataset
  bytes per frame) and ``read`` (time of ``VideoData.frames`` / ``pixel_values`` / ``audio_windows`` /
  ``clip`` for a 14-frame training clip, mean of ``--repeat`` reads at different offsets).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from singer_core.data.format import decode_jpeg, encode_jpeg  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def storage(frames: list[np.ndarray]) -> None:
    import cv2

    def png_encode(frame):
        return cv2.imencode(".png", frame)[1].tobytes()

    def png_decode(data):
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)

    codecs = {
        "raw": (lambda f: f.tobytes(), lambda d, shape: np.frombuffer(d, np.uint8).reshape(shape)),
        "png": (png_encode, lambda d, shape: png_decode(d)),
        "jpeg_q90": (lambda f: encode_jpeg(f, 90), lambda d, shape: decode_jpeg(np.frombuffer(d, np.uint8))),
        "jpeg_q95": (lambda f: encode_jpeg(f, 95), lambda d, shape: decode_jpeg(np.frombuffer(d, np.uint8))),
    }
    for name, (encode, decode) in codecs.items():
        start = time.perf_counter()
        blobs = [encode(f) for f in frames]
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        decoded = [decode(b, f.shape) for b, f in zip(blobs, frames, strict=True)]
        decode_s = time.perf_counter() - start
        quality = float(np.mean([psnr(a, b) for a, b in zip(frames, decoded, strict=True)]))
        print(json.dumps({
            "bench": "storage", "codec": name, "frame_shape": list(frames[0].shape),
            "kib_per_frame": round(float(np.mean([len(b) for b in blobs])) / 1024, 1),
            "encode_ms": round(encode_s / len(frames) * 1e3, 2), "decode_ms": round(decode_s / len(frames) * 1e3, 2),
            "psnr_db": round(quality, 2) if np.isfinite(quality) else None,  # None: lossless
        }))


def prepare_and_read(video: Path, models: Path, size: int, repeat: int) -> None:
    from singer_core.data import SingerDataset
    from singer_core.data.prepare import PrepareSettings
    from singer_core.data.run import prepare_dataset

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        prepare_dataset([video], out, models, PrepareSettings(size=size), progress=False)
        seconds = time.perf_counter() - start
        data = SingerDataset(out)
        if not len(data):
            print(json.dumps({"bench": "prepare", "error": data.rejected[0].message}))
            return
        clip = data[0]
        folder = Path(out) / "videos" / clip.record.id
        print(json.dumps({
            "bench": "prepare", "video": video.name, "size": size, "frames": len(clip), "seconds": round(seconds, 2),
            "frames_kib_per_frame": round((folder / "frames.safetensors").stat().st_size / len(clip) / 1024, 1),
            "features_kib_per_frame": round((folder / "features.safetensors").stat().st_size / len(clip) / 1024, 1),
        }))
        count = min(14, len(clip))
        starts = np.linspace(0, len(clip) - count, repeat).astype(int)
        for name in ("frames", "pixel_values", "audio_windows", "clip"):
            read = getattr(clip, name)
            read(0, count)  # first call opens and caches
            start = time.perf_counter()
            for k in starts:
                read(int(k), count)
            print(json.dumps({"bench": "read", "what": f"{name}(k, {count})", "size": size,
                              "ms": round((time.perf_counter() - start) / repeat * 1e3, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=REPO / "tests" / "data" / "0001_result.mp4")
    parser.add_argument("--models", type=Path, help="models folder (wav2vec2/, insightface/...) for prepare + read")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    import av

    with av.open(str(args.video)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    storage(frames)
    if args.models:
        prepare_and_read(args.video, args.models, args.size, args.repeat)


if __name__ == "__main__":
    main()
