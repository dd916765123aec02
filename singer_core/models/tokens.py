"""Moves between feature maps ``[N, C, h, w]`` and token sequences ``[N, h*w, C]``.

The official transformers run a 1x1 convolution and then permute; a 1x1 convolution is a
linear map over channels, so applying it directly on the permuted view saves a copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv1x1_to_tokens(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` as tokens: ``[N, C, h, w] -> [N, h*w, C_out]``.

    The input is copied into token order first: a linear map on the permuted view would run as a
    batched product with the weight broadcast per image (much slower, in bfloat16 above all).
    """
    tokens = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    return F.linear(tokens, conv.weight.flatten(1), conv.bias).view(x.shape[0], -1, conv.out_channels)


def conv1x1_from_tokens(conv: nn.Conv2d, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``conv`` applied to tokens laid out as a map: ``[N, h*w, C] -> [N, C_out, h, w]`` (a view)."""
    out = F.linear(tokens, conv.weight.flatten(1), conv.bias)
    return out.transpose(1, 2).unflatten(2, (height, width))


def conv1x1_tokens(conv: nn.Conv2d, tokens: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution on tokens, staying in token layout: ``[N, L, C] -> [N, L, C_out]``."""
    return F.linear(tokens, conv.weight.flatten(1), conv.bias)
