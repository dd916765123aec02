"""Residual block factory: diffusers ``ResnetBlock2D`` (official key layout).

The denoising UNet's ``ResnetBlock3D`` with inflated GroupNorm is exactly this block applied
per frame, so both UNets use it on ``[(b f), C, h, w]`` with the time embedding repeated
per frame.
"""

from __future__ import annotations

import torch
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from singer_core.models.unet_spec import UNetSpec


def resnet_block(spec: UNetSpec, in_channels: int, out_channels: int, scale: float = 1.0) -> ResnetBlock2D:
    return ResnetBlock2D(
        in_channels=in_channels,
        out_channels=out_channels,
        temb_channels=spec.time_embed_dim,
        groups=spec.norm_num_groups,
        eps=spec.norm_eps,
        non_linearity="silu",
        output_scale_factor=scale,
    )


def up_block_resnets(spec: UNetSpec, i: int) -> nn.ModuleList:
    """Resnets of up block ``i`` (SD layout): each takes the previous output plus one skip; the
    first one's input comes from the block below, the last one's skip from the block's input level."""
    in_channels, prev_channels, out_channels = spec.up_channels(i)
    layers = spec.layers_per_block + 1
    skips = [out_channels] * (layers - 1) + [in_channels]
    inputs = [prev_channels] + [out_channels] * (layers - 1)
    return nn.ModuleList([resnet_block(spec, x + s, out_channels) for x, s in zip(inputs, skips, strict=True)])


def resnet_forward(resnet: ResnetBlock2D, x: torch.Tensor, time_bias: torch.Tensor) -> torch.Tensor:
    """``resnet(x, temb)`` with ``time_bias = resnet.time_emb_proj(silu(temb))`` ``[N, C]`` given:
    the same operations in the same order as diffusers' forward (default time-embedding norm), so
    the reference UNet can project the time embedding for the whole official batch once."""
    h = resnet.conv1(resnet.nonlinearity(resnet.norm1(x)))
    h = resnet.norm2(h + time_bias[:, :, None, None])
    h = resnet.conv2(resnet.dropout(resnet.nonlinearity(h)))
    if resnet.conv_shortcut is not None:
        x = resnet.conv_shortcut(x)
    return (x + h) / resnet.output_scale_factor
