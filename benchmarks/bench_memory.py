"""Working memory of one generation on the CPU, against ``singer_core.pipeline.memory.estimate_working_memory``.

Each case runs in its own process: build the net (the tiny fixture net, or the full-size architecture
with random weights), prepare random inputs, then one ``generate`` call (latent output, a codec that
costs nothing, so only the net's work is measured). Peak working memory = the process's peak RSS
during ``generate`` minus its RSS before it. Prints one JSON line per case.

    python benchmarks/bench_memory.py                       # tiny net, several sizes
    python benchmarks/bench_memory.py --full --size 128     # full-size architecture, random bf16 weights
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TINY_CASES = [  # (size, clip_length, motion_frames, guidance)
    (64, 4, 2, 3.5), (128, 4, 2, 3.5), (256, 4, 2, 3.5), (128, 8, 2, 3.5), (128, 16, 2, 3.5), (128, 8, 4, 3.5),
    (256, 8, 2, 3.5), (256, 8, 2, 1.0),
]


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current RSS


def _net(full: bool, dtype):
    import torch

    from benchmarks.random_weights import randomize
    from singer_core.checkpoint import empty_net, load_net
    from singer_core.config import NetConfig

    if not full:
        from tests.tiny_models.net import write_tiny_singer_checkpoint

        path = write_tiny_singer_checkpoint(Path("/tmp") / "bench_memory_tiny.safetensors")
        return load_net(path, dtype=dtype)
    net = empty_net(NetConfig.singer())
    return randomize(net, torch.device("cpu"), dtype).requires_grad_(False)


def _inputs(net, size: int, frames: int):
    import torch

    from singer_core.pipeline import AudioTokens, ReferenceInputs

    config = net.config
    masks = [torch.ones(1, (size // s) ** 2) for s in (8, 16, 32, 64)]
    reference = ReferenceInputs(
        pixels=torch.rand(3, size, size) * 2 - 1,
        face_embedding=torch.randn(config.image_proj["clip_embeddings_dim"]),
        face_region=torch.rand(3, size, size),
        full_mask=masks, face_mask=masks, lip_mask=masks,
    )
    proj = config.audio_proj
    windows = torch.randn(frames, proj["seq_len"], proj["blocks"], proj["channels"])
    return reference, AudioTokens(windows, frames)


def run_case(full: bool, size: int, clip_length: int, motion_frames: int, guidance: float, dtype_name: str) -> dict:
    import torch

    from singer_core.pipeline import FunctionCodec, GenerationOptions, generate
    from singer_core.pipeline.memory import WorkShape, estimate_working_memory
    from singer_core.precision import DTYPES

    torch.set_num_threads(2)
    dtype = DTYPES[dtype_name]
    net = _net(full, dtype)
    reference, audio = _inputs(net, size, clip_length)
    latent = size // 8
    codec = FunctionCodec(lambda images: torch.zeros(images.shape[0], 4, latent, latent),
                          lambda latents: torch.zeros(latents.shape[0], 3, size, size))
    options = GenerationOptions(width=size, height=size, clip_length=clip_length, motion_frames=motion_frames,
                                guidance=guidance, steps=1, dtype=dtype_name)
    weights = sum(t.numel() * t.element_size() for t in (*net.parameters(), *net.buffers()))
    before = _rss()
    _reset_peak()
    generate(net, codec, reference, audio, options, output="latents")
    measured = _peak_rss() - before
    shape = WorkShape(width=size, height=size, clip_length=clip_length, motion_frames=motion_frames,
                      cfg=guidance > 1.0, dtype=dtype)
    estimate = estimate_working_memory(net.config, shape)
    return {"net": "full" if full else "tiny", "size": size, "clip_length": clip_length,
            "motion_frames": motion_frames, "cfg": guidance > 1.0, "dtype": dtype_name, "weights_mb": weights / 2**20,
            "measured_mb": round(measured / 2**20, 1), "estimate_mb": round(estimate / 2**20, 1),
            "ratio": round(estimate / max(measured, 1), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="full-size architecture with random weights")
    parser.add_argument("--size", type=int, action="append", help="frame size (repeatable)")
    parser.add_argument("--clip-length", type=int, default=None)
    parser.add_argument("--motion-frames", type=int, default=2)
    parser.add_argument("--dtype", default=None, help="fp32 (tiny default) or bf16 (full default)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case, in this process
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(**json.loads(args.case))), flush=True)
        return
    dtype = args.dtype or ("bf16" if args.full else "fp32")
    if args.size:
        cases = [(s, args.clip_length or 4, args.motion_frames, 3.5) for s in args.size]
    else:
        cases = [(s, c, m, g) for s, c, m, g in TINY_CASES if not args.full]
    for size, clip, motion, guidance in cases:
        case = dict(full=args.full, size=size, clip_length=clip, motion_frames=motion, guidance=guidance,
                    dtype_name=dtype)
        subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], check=True, cwd=REPO)


if __name__ == "__main__":
    main()
