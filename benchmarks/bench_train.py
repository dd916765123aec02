"""Training step time and peak memory on the CPU (tiny net or full-size SINGER), and the parameter budget.

    python benchmarks/bench_train.py [--sizes 64,128] [--frames 14] [--steps 3]
    python benchmarks/bench_train.py --full [--sizes 64] [--steps 2] [--limit-gb 16]

Prints JSON lines: one ``params`` line per preset (full-size SINGER built on the meta device: exact counts,
no memory), then one ``cpu_step`` line per measured configuration, each run in a fresh interpreter so that
its peak RSS is its own. Step time = median of the steps after the first (warm-up).

``--full`` trains the full-size SINGER net (random weights, no download) with the official preset's
trainable set and gradient checkpointing, at a reduced resolution: frozen weights held in ``--frozen-dtype``
(bf16 by default, under CPU bf16 autocast as the trainer's ``train.mixed_precision=bf16``; official fp16 bank),
trainable ones in float32 with AdamW. Each child runs under an address-space cap (``prlimit --as``) so that a
configuration that does not fit fails (its progress lines show how far it got) instead of exhausting the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parameter_budget() -> list[dict]:
    from singer_core.checkpoint import empty_net
    from singer_core.config import NetConfig
    from singer_core.train.config import load_config
    from singer_core.train.model import TRAINABLE_GROUPS

    net = empty_net(NetConfig.singer())
    total = sum(p.numel() for p in net.parameters())
    rows = []
    for preset in ("official", "improved"):
        groups = load_config(preset).model.trainable
        trainable = sum(p.numel() for n, p in net.named_parameters() if any(TRAINABLE_GROUPS[g](n) for g in groups))
        rows.append({"kind": "params", "preset": preset, "total": total, "trainable": trainable,
                     "frozen": total - trainable, "groups": groups})
    return rows


def measure(size: int, frames: int, steps: int, checkpointing: bool, batch: int) -> dict:
    """One configuration in this process (called in a child interpreter)."""
    import torch

    torch.set_num_threads(1)
    from singer_core.train.config import load_config
    from singer_core.train.loop import Trainer, make_batch
    from singer_core.train.objective import StepDraws
    from tests.tiny_models.net import write_tiny_singer_checkpoint
    from tests.tiny_models.train_data import write_tiny_dataset
    from tests.tiny_models.vae import write_diffusers_folder

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_tiny_dataset(root / "data", frames=frames + 4, size=size)
        write_tiny_singer_checkpoint(root / "models" / "singer" / "net.safetensors")
        write_diffusers_folder(root / "models" / "vae" / "tiny")
        config = load_config("official", None, [f"data.size={size}", f"data.frames={frames}", "train.tracker=none",
                                                f"model.gradient_checkpointing={str(checkpointing).lower()}",
                                                "data.num_workers=0", f"train.batch_size={batch}"])
        trainer = Trainer(root / "data", root / "models", "net.safetensors", root / "run", config)
        trainer.setup()
        from torch.utils.data import default_collate

        times = []
        for step in range(steps):
            items = default_collate([trainer.clips[step * batch + i] for i in range(batch)])
            start = time.perf_counter()
            batch_in, timesteps = make_batch(trainer.vae, items, False, True, "cpu")
            out = trainer.step_module(batch_in, StepDraws(items["noise"], items["offset"], timesteps, False, False,
                                                          False))  # fmt: skip
            out.loss.backward()
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
    return {"kind": "cpu_step", "net": "tiny (tests/fixtures/net_tiny.json)", "size": size, "frames": frames,
            "motion_frames": 2, "batch": batch, "gradient_checkpointing": checkpointing, "threads": 1,
            "step_seconds": statistics.median(times[1:]) if len(times) > 1 else times[0],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _progress(phase: str, **fields) -> None:
    """A progress line (phase, seconds since the step began, RSS now and peak): what a child that runs out of
    memory leaves behind."""
    fields = {k: round(v, 2) if isinstance(v, float) else v for k, v in fields.items()}
    print(json.dumps({"kind": "progress", "phase": phase, **fields, "rss_mb": _rss_mb(), "peak_rss_mb": _peak_mb()}),
          flush=True)


def _synthetic_items(size: int, frames: int, motion: int, audio: tuple[int, ...], seed: int) -> dict:
    """One collated batch (b = 1) in the layout of ``TrainingClips`` (random pixels, audio and masks)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    latent = size // 8
    masks = [torch.rand(1, 1, (latent >> k) ** 2, generator=gen) for k in range(4)]
    return {
        "pixels": torch.rand(1, frames, 3, size, size, generator=gen) * 2 - 1,
        "ref_pixels": torch.rand(1, 1 + motion, 3, size, size, generator=gen) * 2 - 1,
        "latent_eps": torch.randn(1, frames, 4, latent, latent, generator=gen),
        "ref_latent_eps": torch.randn(1, 1 + motion, 4, latent, latent, generator=gen),
        "audio_windows": torch.randn(1, frames, *audio, generator=gen),
        "face_embedding": torch.randn(1, 512, generator=gen),
        "face_region": (torch.rand(1, 3, size, size, generator=gen) > 0.5).float(),
        "full_mask": masks, "face_mask": masks, "lip_mask": masks,
        "noise": torch.randn(1, 4, frames, latent, latent, generator=gen),
        "offset": torch.randn(1, 4, 1, 1, 1, generator=gen),
        "timestep": torch.randint(0, 1000, (1,), generator=gen),
    }


def measure_full(arch: str, size: int, frames: int, steps: int, frozen_name: str, device_name: str = "cpu") -> dict:
    """Training steps of the full-size (``arch=singer``) or tiny net built from random weights through the
    trainer's own pieces (trainable selection, checkpointing, optimizer, step module, VAE encoding), on the CPU
    or a CUDA GPU (then the peak is ``torch.cuda.max_memory_allocated``; fp16 runs without loss scaling here,
    which a timing needs not, and says whether the loss stayed finite)."""
    import json as _json

    import torch
    from diffusers import AutoencoderKL

    from benchmarks.random_weights import randomize
    from singer_core.checkpoint import empty_net
    from singer_core.config import NetConfig
    from singer_core.models.reference_bank import BANK_DTYPE
    from singer_core.pipeline.vae_loading import SD_VAE_CONFIG
    from singer_core.train.config import load_config
    from singer_core.train.loop import _frozen_dtype, _make_optimizer, make_batch
    from singer_core.train.model import enable_gradient_checkpointing, hold_frozen, select_trainable
    from singer_core.train.objective import SingerTrainingStep, StepDraws, training_scheduler

    mixed = "no" if frozen_name == "fp32" else frozen_name  # 16-bit frozen weights: that format's autocast
    config = load_config("official", None, [f"data.size={size}", f"data.frames={frames}",
                                            f"model.frozen_dtype={frozen_name}", f"train.mixed_precision={mixed}"])
    frozen = _frozen_dtype(config, mixed)  # the trainer's rule
    device = torch.device(device_name)
    cuda = device.type == "cuda"
    if arch == "singer":
        net_config, vae_config = NetConfig.singer(), SD_VAE_CONFIG
    else:
        net_config = NetConfig.from_file(REPO / "tests" / "fixtures" / "net_tiny.json")
        vae_config = _json.loads((REPO / "tests" / "fixtures" / "vae_tiny.json").read_text())["constructor_kwargs"]
    net = randomize(empty_net(net_config), device, frozen)
    select_trainable(net, config.model.trainable)
    params = [p for p in net.parameters() if p.requires_grad]
    for param in params:  # trainable in float32, as the trainer keeps them
        param.data = param.data.float()
    hold_frozen(net, frozen)  # the trainer's frozen formats (norms in float32)
    if config.model.gradient_checkpointing:
        enable_gradient_checkpointing(net)
    with torch.device("meta"):
        vae = AutoencoderKL(**vae_config)
    vae = randomize(vae, device, frozen)
    weights_rss = _rss_mb()
    _progress("built", weights_rss_mb=weights_rss, frozen_dtype=str(frozen).removeprefix("torch."),
              trainable=sum(p.numel() for p in params))
    optimizer, optimizer_name = _make_optimizer(config, params, device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    step_module = SingerTrainingStep(net, training_scheduler(config.noise), config.noise)
    motion = config.data.motion_frames
    times = []
    for step in range(steps):
        items = _synthetic_items(size, frames, motion, tuple(net.audioproj.window_shape), step)
        draws = [items[key].to(device) for key in ("noise", "offset")]
        _sync(cuda)
        start = time.perf_counter()
        # frozen weights below float32 compute under their format's autocast, as the trainer's mixed precision
        with torch.autocast(device.type, dtype=frozen, enabled=frozen != torch.float32):
            batch_in, timesteps = make_batch(vae, items, False, True, device)
            out = step_module(batch_in, StepDraws(*draws, timesteps, False, False, False))
        _progress("forward", step=step, seconds=time.perf_counter() - start)
        out.loss.backward()
        _progress("backward", step=step, seconds=time.perf_counter() - start)
        torch.nn.utils.clip_grad_norm_(params, config.optimizer.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(cuda)
        times.append(time.perf_counter() - start)
        _progress("optimizer", step=step, seconds=times[-1])
    return {
        "kind": f"{device.type}_step_full",
        "net": arch,
        "size": size,
        "frames": frames,
        "motion_frames": motion,
        "batch": 1,
        "gradient_checkpointing": config.model.gradient_checkpointing,
        "threads": torch.get_num_threads(),
        "trainable": sum(p.numel() for p in params),
        "frozen_dtype": str(frozen).removeprefix("torch."),
        "trainable_dtype": "float32",
        "bank_dtype": str(BANK_DTYPE).removeprefix("torch."),
        "autocast": str(frozen).removeprefix("torch.") if frozen != torch.float32 else "off",
        "optimizer": optimizer_name,
        "loss_finite": bool(torch.isfinite(out.loss)),
        "steps": steps,
        "step_seconds_all": [round(t, 2) for t in times],
        "step_seconds": round(statistics.median(times[1:]) if len(times) > 1 else times[0], 2),
        "weights_rss_mb": weights_rss,
        "peak_rss_mb": _peak_mb(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **(_gpu_fields(device) if cuda else {}),
    }


def _gpu_fields(device) -> dict:
    import torch

    return {"gpu": torch.cuda.get_device_name(device),
            "peak_vram_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}  # fmt: skip


def _sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def run_full(args, env: dict) -> None:
    """One capped child per size; a child killed or out of memory reports how far it got. (On a GPU the
    address-space cap is not applied: CUDA reserves far more address space than it uses.)"""
    limit = int(args.limit_gb * 2**30)
    cap = [] if args.device == "cuda" else ["prlimit", f"--as={limit}"]
    for size in (int(s) for s in args.sizes.split(",")):
        child = [*cap, sys.executable, __file__, "--full", "--child", str(size), "--frames", str(args.frames),
                 "--steps", str(args.steps), "--arch", args.arch, "--frozen-dtype", args.frozen_dtype, "--device",
                 args.device]  # fmt: skip
        run = subprocess.run(child, capture_output=True, text=True, cwd=REPO, env={**env, "MALLOC_ARENA_MAX": "2"})
        lines = [json.loads(x) for x in run.stdout.splitlines() if x.startswith("{")]
        if lines and lines[-1]["kind"].endswith("_step_full"):
            print(json.dumps(lines[-1]), flush=True)
            continue
        print(json.dumps({"kind": "error", "net": args.arch, "size": size, "frames": args.frames,
                          "returncode": run.returncode, "limit_gb": args.limit_gb, "progress": lines,
                          "stderr": run.stderr[-600:]}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="full-size SINGER net (random weights)")
    parser.add_argument("--arch", default="singer", choices=["singer", "tiny"], help="--full: net to build")
    parser.add_argument(
        "--frozen-dtype",
        default="bf16",
        choices=["bf16", "fp16", "fp32"],
        help="--full: frozen weights' dtype (bf16 = the trainer's train.mixed_precision=bf16 on a CPU)",
    )
    parser.add_argument("--limit-gb", type=float, default=16.0, help="--full: address-space cap per child (CPU)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="--full: where to train")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.full and args.child:
        print(json.dumps(measure_full(args.arch, int(args.child), args.frames, args.steps, args.frozen_dtype,
                                      args.device)))
        return
    if args.full:
        run_full(args, {**os.environ, "PYTHONPATH": str(REPO)})
        return
    if args.child:
        size, checkpointing = args.child.split(",")
        print(json.dumps(measure(int(size), args.frames, args.steps, checkpointing == "1", args.batch)))
        return
    for row in parameter_budget():
        print(json.dumps(row), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for size in (int(s) for s in args.sizes.split(",")):
        for checkpointing in (1, 0):
            child = [sys.executable, __file__, "--child", f"{size},{checkpointing}", "--frames", str(args.frames),
                     "--steps", str(args.steps), "--batch", str(args.batch)]  # fmt: skip
            run = subprocess.run(child, capture_output=True, text=True, cwd=REPO, env=env)
            line = [x for x in run.stdout.splitlines() if x.startswith("{")]
            print(line[-1] if line else json.dumps({"kind": "error", "size": size, "stderr": run.stderr[-500:]}),
                  flush=True)


if __name__ == "__main__":
    main()
