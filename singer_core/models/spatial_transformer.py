"""Spatial transformer with reference attention (official ``Transformer2DModel`` /
``Transformer3DModel`` + ``BasicTransformerBlock`` / ``TemporalBasicTransformerBlock`` keys).

Both UNets use the same block: the reference UNet in *write* mode (its ``norm1`` output is
banked), the denoising UNet in *read* mode (the conditional half attends to the banked
reference tokens as well, quirk 4 of docs/official_quirks.md). Frames are folded into the batch (``[(b f), C, h, w]``).
"""

from __future__ import annotations

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

from singer_core.models.attention_ops import attention, cross_attention, feed_forward_residual, project_qkv, sdpa
from singer_core.models.tokens import conv1x1_from_tokens, conv1x1_to_tokens


class ReferenceTransformerBlock(nn.Module):
    """Self-attention, cross-attention to the face tokens, GEGLU feed-forward (pre-LayerNorm)."""

    def __init__(self, dim: int, heads: int, cross_attention_dim: int) -> None:
        super().__init__()
        head_dim = dim // heads
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(query_dim=dim, heads=heads, dim_head=head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(
            query_dim=dim, cross_attention_dim=cross_attention_dim, heads=heads, dim_head=head_dim
        )
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")

    def finish(self, x: torch.Tensor, context_kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Cross-attention (over projected face tokens) and feed-forward, after the self-attention residual."""
        x = cross_attention(self.attn2, self.norm2(x), context_kv) + x
        return feed_forward_residual(self.ff, self.norm3, x)

    def context_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.attn2.to_k(context), self.attn2.to_v(context)

    def forward_write(
        self, x: torch.Tensor, context_kv: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Plain block; also returns the ``norm1`` output that the reference bank keeps."""
        normed = self.norm1(x)
        x = attention(self.attn1, normed) + x
        return self.finish(x, context_kv), normed

    def reference_kv(self, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Self-attention keys/values of the banked reference tokens ``[halves, hw, c]``."""
        return self.attn1.to_k(ref), self.attn1.to_v(ref)

    def forward_read(
        self, x: torch.Tensor, context: torch.Tensor, ref_kv: tuple[torch.Tensor, torch.Tensor], frames: int
    ) -> torch.Tensor:
        """``x`` is ``[(halves f), hw, c]`` ([uncond, cond] or just cond); ``ref_kv`` are the
        ``reference_kv`` of the banked tokens, ``[halves, hw, c]`` each.

        With CFG the unconditional half runs plain self-attention. The conditional frames' keys/
        values are their own tokens followed by reference tokens; the official reader tiles the
        halves' reference rows over the ``(b f)`` batch, so row ``r`` reads half ``r % halves``:
        with CFG, conditional frame ``j`` reads half ``(f + j) % 2``. Reference keys/values are
        projected once per clip and shared by the frames.
        """
        attn = self.attn1
        halves = x.shape[0] // frames
        q, k, v = project_qkv(attn, self.norm1(x))
        start = (halves - 1) * frames  # first conditional row
        pick = torch.arange(start, start + frames, device=x.device) % halves
        k_ref, v_ref = ref_kv[0][pick], ref_kv[1][pick]
        out = sdpa(
            q[start:], torch.cat([k[start:], k_ref], dim=1), torch.cat([v[start:], v_ref], dim=1), attn.heads
        )
        if start:
            out = torch.cat([sdpa(q[:start], k[:start], v[:start], attn.heads), out])
        x = attn.to_out[0](out) + x
        return self.finish(x, self.context_kv(context))


class SpatialTransformer(nn.Module):
    """GroupNorm, 1x1 ``proj_in``, one transformer block, 1x1 ``proj_out``, residual.

    ``path`` is the module path inside its UNet (e.g. ``"mid_block.attentions.0"``); the bank
    keys its entries by ``block_path``, identical in both UNets.
    """

    def __init__(self, channels: int, heads: int, cross_attention_dim: int, groups: int, path: str) -> None:
        super().__init__()
        self.path = path
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, kernel_size=1)
        self.transformer_blocks = nn.ModuleList([ReferenceTransformerBlock(channels, heads, cross_attention_dim)])
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    @property
    def block_path(self) -> str:
        return f"{self.path}.transformer_blocks.0"

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return conv1x1_to_tokens(self.proj_in, self.norm(x))

    def output(self, tokens: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return residual + conv1x1_from_tokens(self.proj_out, tokens, *residual.shape[-2:])

    def forward_write(
        self, x: torch.Tensor, context_kv: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the output map and the block's ``norm1`` tokens (for the bank); ``context_kv``
        are the face tokens projected by this block's ``attn2``."""
        tokens, normed = self.transformer_blocks[0].forward_write(self.tokens(x), context_kv)
        return self.output(tokens, x), normed

    def norm1_only(self, x: torch.Tensor) -> torch.Tensor:
        """Just the banked ``norm1`` tokens: for the last reference block, whose output is unused."""
        return self.transformer_blocks[0].norm1(self.tokens(x))

    def reference_kv(self, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transformer_blocks[0].reference_kv(ref)

    def forward_read(
        self, x: torch.Tensor, context: torch.Tensor, ref_kv: tuple[torch.Tensor, torch.Tensor], frames: int
    ) -> torch.Tensor:
        tokens = self.transformer_blocks[0].forward_read(self.tokens(x), context, ref_kv, frames)
        return self.output(tokens, x)
