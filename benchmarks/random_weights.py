"""Random weights for full-size modules built on the meta device (benchmarks need no checkpoint)."""

from __future__ import annotations

import torch
from torch import nn


def randomize(module: nn.Module, device: torch.device, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    """Random parameters for a module built on the meta device, created one at a time directly in
    ``dtype`` (weights ~ N(0, 1/fan_in), norm scales 1, biases 0; buffers kept)."""
    gen = torch.Generator("cpu").manual_seed(seed)
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is None:
                continue
            if param.dim() > 1:
                value = torch.empty(param.shape).normal_(generator=gen).mul_(param[0].numel() ** -0.5)
            else:
                value = torch.full(param.shape, 1.0 if name == "weight" else 0.0)
            sub._parameters[name] = nn.Parameter(value.to(device, dtype), requires_grad=False)
    return module.to(device=device, dtype=dtype).eval()
