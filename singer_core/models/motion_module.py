"""Motion module (official AnimateDiff ``VanillaTemporalModule`` keys): attention across frames.

Input frames are folded into the batch ``[(b f), C, h, w]``; the ``n_motion`` motion-frame
features from the reference bank are placed in front of the frames (quirk 1 of docs/official_quirks.md), the sinusoidal
position encoding is added to the normed states of every attention (quirk 9 of docs/official_quirks.md), and only the
generated frames are computed past the last attention's keys/values (the motion frames are
dropped from the output anyway). The motion frames' states up to their first attention's
queries/keys/values are the same in every denoising call of a clip: they are computed once
(``motion_frame_states``, memoised in the reference bank).
"""

from __future__ import annotations

import math

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

from singer_core.models.attention_ops import attention, feed_forward_residual, project_qkv, sdpa
from singer_core.models.unet_spec import TemporalSpec

# (tokens, q, k, v) of the leading motion frames at the first temporal attention, each [b, hw, n, dim].
LeadStates = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

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

    def lead_states(self, tokens: torch.Tensor) -> LeadStates:
        """First-attention inputs of the leading (motion) frames ``tokens [b, hw, n, dim]``."""
        attn, norm = self.attention_blocks[0], self.norms[0]
        normed = norm(tokens) + attn.pos_encoder.pe[0, : tokens.shape[2]]
        return (tokens, *project_qkv(attn, normed))

    def forward(self, x: torch.Tensor, drop_leading: int = 0, lead: LeadStates | None = None) -> torch.Tensor:
        """``x [b, hw, F, dim]``; with ``drop_leading`` the first frames leave after the last attention.

        With ``lead`` (``lead_states`` of the leading frames) ``x`` holds only the frames after them.
        """
        last = len(self.attention_blocks) - 1
        for i, (attn, norm) in enumerate(zip(self.attention_blocks, self.norms, strict=True)):
            drop = drop_leading if i == last else 0
            if i == 0 and lead is not None:
                x = self._attend_with_lead(attn, norm(x), x, lead, drop)
                continue
            normed = norm(x) + attn.pos_encoder.pe[0, : x.shape[2]]
            if drop:
                x = attention(attn, normed[:, :, drop:], normed) + x[:, :, drop:]
            else:
                x = attention(attn, normed) + x
        return feed_forward_residual(self.ff, self.ff_norm, x)

    @staticmethod
    def _attend_with_lead(attn, normed, x, lead: LeadStates, drop: int) -> torch.Tensor:
        """Self-attention over ``[lead frames, x frames]`` with the lead frames' states precomputed."""
        tokens, q_lead, k_lead, v_lead = lead
        n = tokens.shape[2]
        q, k, v = project_qkv(attn, normed + attn.pos_encoder.pe[0, n : n + x.shape[2]])
        k, v = torch.cat([k_lead, k], dim=2), torch.cat([v_lead, v], dim=2)
        if drop:
            return attn.to_out[0](sdpa(q, k, v, attn.heads)) + x
        q = torch.cat([q_lead, q], dim=2)
        return attn.to_out[0](sdpa(q, k, v, attn.heads)) + torch.cat([tokens, x], dim=2)


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
        """Per-frame GroupNorm, then ``[(b F), C, h, w] -> [b, hw, F, C]`` (contiguous, so that
        ``proj_in`` is one plain matrix product)."""
        normed = self.norm(maps)
        return normed.unflatten(0, (batch, -1)).flatten(3).permute(0, 3, 1, 2).contiguous()

    def motion_frame_states(self, motion_tokens: torch.Tensor) -> LeadStates | None:
        """Per clip: ``motion_tokens [b, n, hw, C]`` (banked) through ``norm`` and ``proj_in``, plus
        their first temporal attention's queries/keys/values; ``None`` without motion frames."""
        batch, n_motion, _, channels = motion_tokens.shape
        if not n_motion:
            return None
        maps = motion_tokens.transpose(2, 3).reshape(batch * n_motion, channels, -1)
        return self.transformer_blocks[0].lead_states(self.proj_in(self._frame_tokens(maps, batch)))

    def forward(self, x: torch.Tensor, lead: LeadStates | None, batch: int) -> torch.Tensor:
        """``x [(b f), C, h, w]`` and ``motion_frame_states`` of the clip -> ``[(b f), C, h, w]``."""
        n_motion = 0 if lead is None else lead[0].shape[2]
        tokens = self.proj_in(self._frame_tokens(x, batch))
        last = len(self.transformer_blocks) - 1
        for i, block in enumerate(self.transformer_blocks):
            tokens = block(tokens, n_motion if i == last else 0, lead if i == 0 else None)
        out = self.proj_out(tokens)  # [b, hw, f, C]
        return (x.unflatten(0, (batch, -1)).flatten(3) + out.permute(0, 2, 3, 1)).view(x.shape)


class VanillaTemporalModule(nn.Module):
    def __init__(self, channels: int, spec: TemporalSpec) -> None:
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, spec)

    def motion_frame_states(self, motion_tokens: torch.Tensor) -> LeadStates | None:
        return self.temporal_transformer.motion_frame_states(motion_tokens)

    def forward(self, x: torch.Tensor, lead: LeadStates | None, batch: int) -> torch.Tensor:
        return self.temporal_transformer(x, lead, batch)
