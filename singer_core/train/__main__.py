"""``python -m singer_core.train --data DATASET --models MODELS --checkpoint NAME --out RUN [--config CONFIG.yaml]
[--preset official|improved] [--max-steps N] [--size 512] [--set KEY=VALUE ...]``

The same flags under ``accelerate launch [--num_processes N] -m singer_core.train ...`` (docs/training.md).
Exit status 0 on success, 2 on a bad input (the message names the file or key at fault).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from singer_core.errors import SingerError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m singer_core.train", description="Fine-tune SINGER on a prepared "
                                "dataset (python -m singer_core.data prepare).")
    p.add_argument("--data", required=True, type=Path, help="dataset folder written by singer_core.data prepare")
    p.add_argument("--models", required=True, type=Path, help="models folder (singer/, vae/) as for generate")
    p.add_argument("--checkpoint", required=True, help="starting weights in MODELS/singer/: SINGER or Hallo net "
                   "file, or a Hallo stage-1 folder")
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, state, logs); resumes if present")
    p.add_argument("--config", type=Path, help="YAML with any keys of the presets (singer_core/train/presets)")
    p.add_argument("--preset", choices=["official", "improved"], help="base settings (default: official)")
    p.add_argument("--max-steps", type=int, help="= --set train.max_steps=N")
    p.add_argument("--size", type=int, help="= --set data.size=N (must match the dataset)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set lora.rank=8 --set train.batch_size=2")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        from singer_core.train.config import load_config

        overrides = list(args.overrides)
        if args.max_steps is not None:
            overrides.append(f"train.max_steps={args.max_steps}")
        if args.size is not None:
            overrides.append(f"data.size={args.size}")
        config = load_config(args.preset, args.config, overrides)
        if args.print_config:
            print(config.to_yaml())
            return 0
        if not args.data.is_dir():
            raise SingerError(f"Dataset folder not found: {args.data}. Prepare one with `python -m singer_core.data "
                              "prepare VIDEOS... --out DATASET --models MODELS`.")
        from singer_core.train.loop import train

        result = train(args.data, args.models, args.checkpoint, args.out, config)
    except SingerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"trained to step {result.steps} (resumed from {result.resumed_from}); last loss {result.last_loss:.5f}; "
          f"{result.seconds_per_step:.2f} s/step; checkpoints: {', '.join(str(p) for p in result.checkpoints)}")
    from singer_core.train.loop import end_distributed_process

    end_distributed_process(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
