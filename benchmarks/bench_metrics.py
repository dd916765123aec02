"""Seconds per frame of the evaluation metrics on one video: PSNR, SSIM, CPBD and, for 224x224 crop videos, LSE
with a random-weight SyncNet (same cost as the real weights). The landmark metrics and FVD are left out: their
cost is the face models' and I3D's, whose weights cannot be generated here. One JSON object per line.

    python benchmarks/bench_metrics.py --video path/to/clip.mp4 --frames 32 --device cpu
    python benchmarks/bench_metrics.py --video tests/fixtures/metrics/syncnet_crops.mp4 --device cuda
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from singer_core.evaluation.fidelity import psnr_frames, ssim_frames  # noqa: E402
from singer_core.evaluation.media import read_frames  # noqa: E402
from singer_core.evaluation.sharpness import cpbd, to_gray  # noqa: E402
from singer_core.evaluation.syncnet import SyncNet, sync_scores, syncnet_audio, syncnet_frames  # noqa: E402

DEFAULT_VIDEO = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "metrics" / "syncnet_crops.mp4"


def timed(name: str, frames: int, size: tuple[int, int], device: str, run) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(json.dumps({"metric": name, "frames": frames, "width": size[1], "height": size[0], "device": device,
                      "seconds": round(seconds, 4), "seconds_per_frame": round(seconds / frames, 5)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(DEFAULT_VIDEO))
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    frames = read_frames(args.video, args.frames)
    noisy = np.clip(frames.astype(np.int16) + np.random.default_rng(0).integers(-20, 21, frames.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    n, size = len(frames), frames.shape[1:3]
    timed("psnr", n, size, args.device, lambda: psnr_frames(noisy, frames, args.device))
    timed("ssim", n, size, args.device, lambda: ssim_frames(noisy, frames, args.device))
    timed("cpbd", n, size, args.device, lambda: [cpbd(to_gray(f)) for f in frames])
    if size == (224, 224):
        net = SyncNet().eval().to(args.device)
        crops, audio = syncnet_frames(args.video)[: args.frames], syncnet_audio(args.video)
        timed("lse_face_crops", len(crops), size, args.device, lambda: sync_scores(net, crops, audio))


if __name__ == "__main__":
    main()
