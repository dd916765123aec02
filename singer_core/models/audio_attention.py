"""Audio cross-attention module (official ``Transformer3DModel(use_audio_module=True)`` with an
``AudioTemporalBasicTransformerBlock``), quirk 8 of docs/official_quirks.md.

Per frame: self-attention over the tokens, then three cross-attentions to that frame's audio
tokens, each gated by the full / face / lip mask of the block's level, passed through its 1x1
``zero_conv_*`` (applied as a linear map on tokens, so any h x w works) and weighted by
``motion_scale``; then a feed-forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

from singer_core.models.attention_ops import attention, feed_forward_residual, sdpa
from singer_core.models.conditions import RegionMasks
from singer_core.models.tokens import conv1x1_from_tokens, conv1x1_to_tokens, conv1x1_tokens


class AudioTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, audio_dim: int) -> None:
        super().__init__()
        self.zero_conv_full = nn.Conv2d(dim, dim, kernel_size=1)
        self.zero_conv_face = nn.Conv2d(dim, dim, kernel_size=1)
        self.zero_conv_lip = nn.Conv2d(dim, dim, kernel_size=1)
        self.attn1 = Attention(query_dim=dim, heads=heads, dim_head=head_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn2_0 = Attention(query_dim=dim, cross_attention_dim=audio_dim, heads=heads, dim_head=head_dim)
        self.attn2_1 = Attention(query_dim=dim, cross_attention_dim=audio_dim, heads=heads, dim_head=head_dim)
        self.attn2_2 = Attention(query_dim=dim, cross_attention_dim=audio_dim, heads=heads, dim_head=head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.norm3 = nn.LayerNorm(dim)

    def forward(
        self, x: torch.Tensor, audio: torch.Tensor, masks: RegionMasks, motion_scale: tuple[float, float, float],
        silent: int = 0,
    ) -> torch.Tensor:
        """``x [(b f), hw, dim]``, ``audio [(b f), tokens, audio_dim]``; the first ``silent`` rows have
        all-zero audio tokens (the unconditional CFG half)."""
        x = attention(self.attn1, self.norm1(x)) + x  # a fresh tensor: the audio terms are added in place
        full, face, lip = self.audio_cross_attention(self.norm2(x[silent:]), audio[silent:])
        full = conv1x1_tokens(self.zero_conv_full, full * masks.full[silent:])
        face = conv1x1_tokens(self.zero_conv_face, face * masks.face[silent:])
        lip = conv1x1_tokens(self.zero_conv_lip, lip * masks.lip[silent:])
        terms = motion_scale[0] * full + motion_scale[1] * face + motion_scale[2] * lip
        if torch.is_grad_enabled():  # training: out of place (norm2 saved x for the backward pass)
            if silent:
                terms = torch.cat([self.silent_audio_terms(masks, motion_scale, silent).expand_as(x[:silent]), terms])
            return feed_forward_residual(self.ff, self.norm3, x + terms)
        x[silent:] += terms
        if silent:
            x[:silent] += self.silent_audio_terms(masks, motion_scale, silent)
        return feed_forward_residual(self.ff, self.norm3, x)

    def silent_audio_terms(self, masks: RegionMasks, motion_scale: tuple[float, float, float], rows: int):
        """The gated audio terms of rows whose audio tokens are all zero, without attention.

        Keys and values of zero tokens are zero (the projections have no bias), so each
        cross-attention returns exactly its ``to_out`` bias ``b``; ``zero_conv(b * m)`` is
        ``m * (W b) + c`` for the mask value ``m`` of each token.
        """
        terms = 0.0
        pairs = ((self.attn2_0, self.zero_conv_full, masks.full), (self.attn2_1, self.zero_conv_face, masks.face),
                 (self.attn2_2, self.zero_conv_lip, masks.lip))  # fmt: skip
        for scale, (attn, conv, mask) in zip(motion_scale, pairs, strict=True):
            direction = F.linear(attn.to_out[0].bias, conv.weight.flatten(1))
            terms = terms + scale * (mask[:rows] * direction + conv.bias)
        return terms

    def audio_cross_attention(self, x: torch.Tensor, audio: torch.Tensor) -> list[torch.Tensor]:
        """``attn2_0/1/2`` (full, face, lip) at once: their heads side by side in one SDPA call."""
        branches = (self.attn2_0, self.attn2_1, self.attn2_2)
        q = F.linear(x, torch.cat([a.to_q.weight for a in branches]))
        k = F.linear(audio, torch.cat([a.to_k.weight for a in branches]))
        v = F.linear(audio, torch.cat([a.to_v.weight for a in branches]))
        outs = sdpa(q, k, v, 3 * self.attn2_0.heads).chunk(3, dim=-1)
        return [a.to_out[0](out) for a, out in zip(branches, outs, strict=True)]


class AudioAttentionModule(nn.Module):
    """GroupNorm, 1x1 ``proj_in`` to ``heads * (width // heads)``, audio block, 1x1 ``proj_out``, residual.

    ``width`` is the official "in_channels" used for the inner size (the block's input
    channels for the first layer of a down block and for every layer of an up block).
    """

    def __init__(self, channels: int, width: int, heads: int, audio_dim: int, groups: int, level: int) -> None:
        super().__init__()
        self.level = level
        head_dim = width // heads
        inner = heads * head_dim
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, kernel_size=1)
        self.transformer_blocks = nn.ModuleList([AudioTransformerBlock(inner, heads, head_dim, audio_dim)])
        self.proj_out = nn.Conv2d(inner, channels, kernel_size=1)

    def forward(
        self, x: torch.Tensor, audio: torch.Tensor, masks: RegionMasks, motion_scale: tuple[float, float, float],
        silent: int = 0,
    ) -> torch.Tensor:
        tokens = conv1x1_to_tokens(self.proj_in, self.norm(x))
        tokens = self.transformer_blocks[0](tokens, audio, masks, motion_scale, silent)
        return x + conv1x1_from_tokens(self.proj_out, tokens, *x.shape[-2:])
