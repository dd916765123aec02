"""Face locator: the face-region mask video -> a latent-resolution feature map for the UNet input.

Official class: ``FaceLocator`` (the Net's ``face_locator``), fixtures README section 4.
The official ``InflatedConv3d`` is a ``Conv2d`` applied to every frame, so plain ``Conv2d``
layers give the same keys and numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from singer_core.errors import InputError


class FaceLocator(nn.Module):
    """``[b, conditioning_channels, f, H, W] -> [b, conditioning_embedding_channels, f, H/8, W/8]``.

    conv_in, SiLU, then per stage (conv 3x3, SiLU, conv 3x3 stride 2, SiLU), then conv_out.
    """

    def __init__(
        self,
        conditioning_embedding_channels: int,
        conditioning_channels: int = 3,
        block_out_channels: tuple[int, ...] = (16, 32, 64, 128),
    ) -> None:
        super().__init__()
        self.conditioning_channels = conditioning_channels
        self.conv_in = nn.Conv2d(conditioning_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        for channel_in, channel_out in zip(block_out_channels[:-1], block_out_channels[1:], strict=True):
            self.blocks.append(nn.Conv2d(channel_in, channel_in, kernel_size=3, padding=1))
            self.blocks.append(nn.Conv2d(channel_in, channel_out, kernel_size=3, padding=1, stride=2))
        self.conv_out = nn.Conv2d(block_out_channels[-1], conditioning_embedding_channels, kernel_size=3, padding=1)

    def forward(self, conditioning: torch.Tensor) -> torch.Tensor:
        if conditioning.dim() != 5 or conditioning.shape[1] != self.conditioning_channels:
            raise InputError(
                f"Face locator: expected a face-region video [batch, {self.conditioning_channels}, frames, height, "
                f"width], got {tuple(conditioning.shape)}."
            )
        batch, _, frames, height, width = conditioning.shape
        hidden = conditioning.transpose(1, 2).reshape(batch * frames, -1, height, width)
        hidden = F.silu(self.conv_in(hidden))
        for conv in self.blocks:
            hidden = F.silu(conv(hidden))
        hidden = self.conv_out(hidden)
        return hidden.reshape(batch, frames, *hidden.shape[1:]).transpose(1, 2)
