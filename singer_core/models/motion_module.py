"""Motion module (official AnimateDiff ``VanillaTemporalModule`` keys): attention across frames.

Input frames are folded into the batch ``[(b f), C, h, w]``; the ``n_motion`` motion-frame
features from the reference bank are placed in front of the frames (quirk 1), the sinusoidal
position encoding is added to the normed states of every attention (quirk 9), and only the
generated frames are computed past the last attention's keys/values (the motion frames are
dropped from the output anyway).
"""

from __future__ import annotations

import math

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

from singer_core.models.attention_ops import attention
from singer_core.models.unet_spec import TemporalSpec

MOTION_NORM_GROUPS = 32  # TemporalTransformer3DModel's own default, not the UNet's norm_num_groups


class PositionalEncoding(nn.Module):
    """Sinusoidal table ``pe [1, max_len, dim]`` (a persistent buffer of the checkpoint)."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * div_term)
        pe[0, :, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)


class TemporalSelfAttention(Attention):
    """``Attention`` weights plus the position table of its frames (official ``VersatileAttention``)."""

    def __init__(self, dim: int, heads: int, head_dim: int, max_len: int) -> None:
        super().__init__(query_dim=dim, heads=heads, dim_head=head_dim)
        self.pos_encoder = PositionalEncoding(dim, max_len)


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, n_attention: int, max_len: int) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            [TemporalSelfAttention(dim, heads, head_dim, max_len) for _ in range(n_attention)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(n_attention)])
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, drop_leading: int = 0) -> torch.Tensor:
        """``x [b, hw, F, dim]``; with ``drop_leading`` the first frames leave after the last attention."""
        frames = x.shape[2]
        last = len(self.attention_blocks) - 1
        for i, (attn, norm) in enumerate(zip(self.attention_blocks, self.norms, strict=True)):
            normed = norm(x) + attn.pos_encoder.pe[0, :frames]
            if i == last and drop_leading:
                x = attention(attn, normed[:, :, drop_leading:], normed) + x[:, :, drop_leading:]
            else:
                x = attention(attn, normed) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, spec: TemporalSpec) -> None:
        super().__init__()
        heads = spec.motion_heads
        head_dim = channels // heads // spec.motion_dim_div
        inner = heads * head_dim
        self.norm = nn.GroupNorm(MOTION_NORM_GROUPS, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            [
                TemporalTransformerBlock(inner, heads, head_dim, spec.motion_attention_blocks, spec.motion_pe_max_len)
                for _ in range(spec.motion_layers)
            ]
        )
        self.proj_out = nn.Linear(inner, channels)

    def _frame_tokens(self, maps: torch.Tensor, batch: int) -> torch.Tensor:
        """Per-frame GroupNorm, then ``[(b F), C, h, w] -> [b, hw, F, C]`` (a view)."""
        normed = self.norm(maps)
        return normed.unflatten(0, (batch, -1)).flatten(3).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor, motion_tokens: torch.Tensor, batch: int) -> torch.Tensor:
        """``x [(b f), C, h, w]``, ``motion_tokens [b, n, hw, C]`` -> ``[(b f), C, h, w]``."""
        n_motion = motion_tokens.shape[1]
        tokens = self._frame_tokens(x, batch)
        if n_motion:
            maps = motion_tokens.transpose(2, 3).reshape(batch * n_motion, *x.shape[1:])
            tokens = torch.cat([self._frame_tokens(maps, batch), tokens], dim=2)
        tokens = self.proj_in(tokens)
        last = len(self.transformer_blocks) - 1
        for i, block in enumerate(self.transformer_blocks):
            tokens = block(tokens, n_motion if i == last else 0)
        out = self.proj_out(tokens)  # [b, hw, f, C]
        return (x.unflatten(0, (batch, -1)).flatten(3) + out.permute(0, 2, 3, 1)).view(x.shape)


class VanillaTemporalModule(nn.Module):
    def __init__(self, channels: int, spec: TemporalSpec) -> None:
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, spec)

    def forward(self, x: torch.Tensor, motion_tokens: torch.Tensor, batch: int) -> torch.Tensor:
        return self.temporal_transformer(x, motion_tokens, batch)
