"""Time and peak memory of the full-size modules: MSM, SFM, the reference-UNet write pass and one
denoising-UNet call (CFG pair), SD 1.5 configuration with random weights (no download).

``reference`` is a write pass over six distinct rows (what the official code computes for every
clip); ``reference_next_clip`` is the pass of a later clip of a song, whose reference rows are
carried over from the previous clip (``RowMemo``: their inputs are bit-identical) so only the motion-frame rows run.

Each module is measured in its own fresh subprocess, so the CPU peak RSS (``ru_maxrss`` only ever
grows within a process) belongs to that module alone; only the module under test is built. One
JSON object per line on stdout. ``baseline_s`` / ``baseline_peak_mb`` are the figures of the
official code measured on this project's 2-core CPU (fp32, 512x512, torch 2.13), quoted from
issue 2; ``speedup`` is ``baseline_s / seconds`` (only where such a figure exists).

    python benchmarks/bench_modules.py --modules reference,denoise --frames 2
    python benchmarks/bench_modules.py --device cuda --frames 16 --dtype bf16 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness  # noqa: E402
from benchmarks.random_weights import randomize  # noqa: E402
from singer_core.checkpoint import parameters_on_meta  # noqa: E402
from singer_core.config import NetConfig  # noqa: E402
from singer_core.models.conditions import DenoiseConditions, MaskPyramid  # noqa: E402
from singer_core.models.reference_bank import ReferenceBank  # noqa: E402
from singer_core.models.reference_rows import RowMemo  # noqa: E402
from singer_core.net import SingerNet  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MODULES = ("msm", "sfm", "reference", "reference_next_clip", "denoise")
N_MOTION = 2  # official motion frames

BASELINE_SOURCE = "official code measured on this machine type (2-core CPU, fp32, 512x512), quoted from the issue"
# (module, frames) -> (seconds, peak RSS in MB or None); the reference pass does not depend on frames.
BASELINE = {
    ("reference", None): (27.8, 5.2 * 1024),
    ("reference_next_clip", None): (27.8, 5.2 * 1024),  # the official pass is the same in every clip
    ("denoise", 2): (57.0, 11.4 * 1024),
    ("denoise", 4): (117.0, None),
    ("denoise", 16): (490.0, 15.4 * 1024),
    ("msm", 16): (0.016, None),
    ("sfm", 16): (0.052, None),
}


def build(module: str, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Only the sub-module under test, with random weights."""
    with parameters_on_meta():
        net = SingerNet(NetConfig.singer())
    part = {
        "msm": net.audioembed,
        "sfm": net.denoising_unet.hidden_spectral_weighting,
        "reference": net.reference_unet,
        "reference_next_clip": net.reference_unet,
        "denoise": net.denoising_unet,
    }[module]
    return randomize(part, device, dtype)


def random_bank(unet: nn.Module, size: int, halves: int, gen: torch.Generator, device) -> ReferenceBank:
    """A bank of the shapes the write pass produces, for every spatial transformer of ``unet``."""
    from singer_core.models.spatial_transformer import SpatialTransformer

    bank = ReferenceBank(halves=halves)
    depth = unet.spec.depth
    for name, sub in unet.named_modules():
        if not isinstance(sub, SpatialTransformer):
            continue
        kind, index = name.split(".")[:2]
        level = {"down_blocks": int(index) if index.isdigit() else 0, "mid_block": depth - 1}.get(
            kind, depth - 1 - (int(index) if index.isdigit() else 0)
        )
        side = -(-size // 2**level)
        rows = torch.randn(halves * (1 + N_MOTION), side * side, sub.norm.num_channels, generator=gen)
        bank.write(sub.block_path, rows.to(device))
    return bank


def pyramid(size: int, frames: int, fill: float, device) -> list[torch.Tensor]:
    return [torch.full((frames, (-(-size // 2**i)) ** 2), fill, device=device) for i in range(4)]


def make_call(module: str, part: nn.Module, args, device, dtype):
    """A zero-argument callable running the module once on inputs of the right shapes."""
    gen = torch.Generator("cpu").manual_seed(1)
    latent, frames = args.resolution // 8, args.frames

    def randn(*shape):
        return torch.randn(*shape, generator=gen).to(device, dtype)

    if module == "msm":
        audio, latents = randn(1, frames, 32, 768), randn(1, 4, frames, latent, latent)
        return lambda: part(audio, latents)
    if module == "sfm":
        side = -(-latent // 8)
        hidden = randn(2, part.weight.shape[2], frames, side, side)
        return lambda: part(hidden)
    if module.startswith("reference"):
        return reference_call(part, randn(1 + N_MOTION, 4, latent, latent), randn(2, 4, 768), module)
    masks = MaskPyramid(*(pyramid(latent, frames, fill, device) for fill in (1.0, 0.5, 0.2)))
    cond = DenoiseConditions(
        bank=random_bank(part, latent, 2, gen, device),
        image_tokens=randn(2, 4, 768),
        audio_tokens=torch.cat([torch.zeros(1, frames, 32, 768), torch.randn(1, frames, 32, 768, generator=gen)]).to(
            device, dtype
        ),
        face_features=randn(1, part.conv_in.out_channels, 1, latent, latent),
        masks=masks,
    )
    sample = randn(1, 4, frames, latent, latent).expand(2, -1, -1, -1, -1)
    return lambda: part(sample, 500, cond)


def reference_call(unet: nn.Module, rows: torch.Tensor, tokens: torch.Tensor, module: str):
    """``reference``: every row new. ``reference_next_clip``: a memo filled by a previous clip with
    the same reference, and new motion frames at every call."""
    if module == "reference":
        return lambda: unet.write_bank(rows, tokens[:1], tokens[1:])
    memo = RowMemo()
    unet.write_bank(rows, tokens[:1], tokens[1:], memo)  # the previous clip, untimed

    def next_clip():
        rows[1:] = torch.randn_like(rows[1:])
        return unet.write_bank(rows, tokens[:1], tokens[1:], memo)

    return next_clip


def measure(module: str, args) -> dict:
    """Runs in the worker subprocess: build, warm nothing (full-size calls are long), time ``repeat`` calls."""
    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    part = build(module, device, dtype)
    call = make_call(module, part, args, device, dtype)
    weights_mb = sum(p.numel() * p.element_size() for p in part.parameters()) / 2**20
    rss_before = harness.rss_mb()
    times, cpu_times = [], []
    with torch.inference_mode():
        first = None
        if args.warmup:
            start = time.perf_counter()
            call()
            first = time.perf_counter() - start
        for _ in range(args.repeat):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            call()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    row = {
        "module": module,
        "device": args.device,
        "dtype": args.dtype,
        "resolution": args.resolution,
        "frames": None if module.startswith("reference") else args.frames,
        "batch": 2 * (1 + N_MOTION) if module.startswith("reference") else 2 * args.frames,
        "threads": args.threads,
        **harness.timing_fields(first, times, cpu_times),
        "weights_mb": round(weights_mb),
    }
    if device.type == "cuda":
        row["peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    else:
        row["rss_after_build_mb"] = round(rss_before)
        row["peak_mb"] = round(harness.peak_rss_mb())
    baseline = BASELINE.get((module, None if module.startswith("reference") else args.frames))
    if baseline is not None and args.resolution == 512:
        seconds, peak = baseline
        row.update(baseline_s=seconds, speedup=round(seconds / row["seconds"], 3), baseline_source=BASELINE_SOURCE)
        if peak is not None:
            row["baseline_peak_mb"] = round(peak)
    return row


def fixture_deviation(dtype_name: str) -> dict:
    """Max abs error of ``noise_pred`` against the official float32 output on the ``denoise_step``
    fixture (tiny net), running the whole step (conditions, write pass, UNet call) in ``dtype``."""
    from safetensors.torch import load_file

    from singer_core.sampling import ClipInputs, clip_conditions, predict_noise

    fixtures = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
    dtype = DTYPES[dtype_name]
    net = SingerNet(NetConfig.from_file(fixtures / "net_tiny.json"))
    net.load_state_dict(load_file(str(fixtures / "net_tiny.weights.safetensors")), strict=True)
    net = net.to(dtype).eval()
    io = {k: v.to(dtype) if v.is_floating_point() else v for k, v in
          load_file(str(fixtures / "denoise_step.io.safetensors")).items()}  # fmt: skip
    with torch.inference_mode():
        masks = MaskPyramid(*[[io[f"input.{kind}_mask.{i}"] for i in range(4)] for kind in ("full", "face", "lip")])
        clip = ClipInputs(io["input.ref_image_latents"], io["input.face_emb"], io["input.face_region"], masks,
                          net.audioproj(io["input.audio_windows"]), io["input.latents"])  # fmt: skip
        conditions = clip_conditions(net, clip, io["input.latents"], io["input.motion_scale"].tolist())
        prediction = predict_noise(net, io["input.latents"], io["input.timestep"], conditions).float()
    expected = load_file(str(fixtures / "denoise_step.io.safetensors"))["output.noise_pred"].float()
    error = (prediction - expected).abs()
    return {"fixture": "denoise_step", "dtype": dtype_name, "noise_pred_max_abs_error": float(error.max()),
            "noise_pred_mean_abs_error": float(error.mean()), "noise_pred_abs_max": float(expected.abs().max()),
            "noise_pred_std": float(expected.std())}  # fmt: skip


def run_isolated(module: str, args) -> dict:
    return harness.run_isolated(__file__, module, args, ["--device", args.device, "--dtype", args.dtype])


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    parser.add_argument("--fixture-deviation", action="store_true",
                        help="instead of timing: noise_pred error vs the official fp32 output on the denoise_step "
                             "fixture (tiny net) at --dtype")  # fmt: skip
    harness.add_timing_arguments(parser, MODULES)
    args = parser.parse_args(argv)
    harness.check_modules(parser, args, MODULES)
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse(argv)
    if args.fixture_deviation:
        torch.set_num_threads(args.threads)
        row = fixture_deviation(args.dtype)
        print(json.dumps(row), flush=True)
        return [row]
    return harness.run_modules(args, measure, run_isolated)


if __name__ == "__main__":
    main()
