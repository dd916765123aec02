"""Convert a SINGER/Hallo net checkpoint to ``.safetensors`` with its architecture in the metadata.

    python -m singer_core.convert IN OUT.safetensors [--config ARCH.json] [--dtype fp16|bf16|fp32]

``IN`` is the official ``net.pth`` (or one of our ``.safetensors``). ``--config`` names the
architecture when it is not the full-size default (the fixtures' net-config JSON form or
our own ``NetConfig`` JSON); it is stored in the output's metadata so the file reloads
without side files. The weights are checked against that architecture before writing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from singer_core.checkpoint import CONFIG_METADATA_KEY, KIND_METADATA_KEY, empty_net, read_checkpoint, verify_keys
from singer_core.config import NetConfig
from singer_core.errors import CheckpointError, SingerError
from singer_core.precision import DTYPES


def convert(source: Path, target: Path, config: NetConfig | None = None, dtype: torch.dtype | None = None) -> str:
    """Write ``target`` and return a one-line summary of what was written."""
    if target.suffix != ".safetensors":
        raise CheckpointError(f"The output file must end in .safetensors, got {target.name}.")
    checkpoint = read_checkpoint(source, config)
    verify_keys(checkpoint, empty_net(checkpoint.config))
    tensors = {key: _cast(tensor, dtype).contiguous() for key, tensor in checkpoint.state_dict.items()}
    metadata = {"format": "pt", KIND_METADATA_KEY: checkpoint.kind, CONFIG_METADATA_KEY: checkpoint.config.to_json()}
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target), metadata=metadata)
    elements = sum(t.numel() for t in tensors.values())
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values()})
    return (
        f"wrote {target}: {checkpoint.kind} net, {len(tensors)} tensors, {elements:,} elements, "
        f"{'/'.join(dtypes)}, {target.stat().st_size / 1e6:.1f} MB; architecture stored in metadata "
        f"'{CONFIG_METADATA_KEY}'"
    )


def _cast(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    return tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m singer_core.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="net.pth (official SINGER or Hallo) or .safetensors")
    parser.add_argument("target", type=Path, help="output .safetensors")
    parser.add_argument("--config", type=Path, help="architecture JSON (default: full size of the detected kind)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="cast floating-point weights (default: keep)")
    args = parser.parse_args(argv)
    try:
        config = NetConfig.from_file(args.config) if args.config else None
        print(convert(args.source, args.target, config, DTYPES.get(args.dtype)))
    except (SingerError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
