"""Training step time and peak memory on the CPU (tiny net), and the full-size parameter budget per preset.

    python benchmarks/bench_train.py [--sizes 64,128] [--frames 14] [--steps 3]

Prints JSON lines: one ``params`` line per preset (full-size SINGER built on the meta device: exact counts,
no memory), then one ``cpu_step`` line per measured configuration, each run in a fresh interpreter so that
its peak RSS is its own. Step time = median of the steps after the first (warm-up).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
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
