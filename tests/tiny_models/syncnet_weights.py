"""Deterministic random weights in the layout of syncnet_v2.model, for the LSE golden data and its test.

The same function makes the state dict that tools/make_metric_fixtures_syncnet.py gives the real
syncnet_python code and the one tests/test_eval_syncnet.py gives ours, so no 50 MB weight file is stored.
Scales keep activations moderate (the lip tower sees raw 0..255 pixels, the audio tower raw MFCC values), so
the distances are O(1) like those of the real weights and a 1e-4 comparison is meaningful in float32.
"""

from __future__ import annotations

import math

import torch

FIRST_LAYER_GAIN = {"netcnnlip.0.weight": 1 / 128, "netcnnaud.0.weight": 1 / 16}
EMBEDDING_GAIN = 0.05


def random_syncnet_state(shapes: dict[str, torch.Size], seed: int = 0) -> dict[str, torch.Tensor]:
    """Values for every key of ``shapes`` (a SyncNet state dict's names and shapes), drawn in sorted key order."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name in sorted(shapes):
        shape = shapes[name]
        noise = torch.randn(shape, generator=generator, dtype=torch.float64) if len(shape) else None
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(0, dtype=torch.long)
        elif name.endswith("running_var"):
            state[name] = (1 + 0.1 * noise.abs()).float()
        elif name.endswith("running_mean"):
            state[name] = (0.1 * noise).float()
        elif name.endswith("weight") and len(shape) == 1:  # batch-norm scale
            state[name] = (1 + 0.1 * noise).float()
        elif name.endswith("bias"):
            state[name] = (0.05 * noise).float()
        else:
            fan_in = math.prod(shape[1:])
            gain = FIRST_LAYER_GAIN.get(name, EMBEDDING_GAIN if name.endswith(".3.weight") and "netfc" in name else 1)
            state[name] = (noise * math.sqrt(2 / fan_in) * gain).float()
    return state
