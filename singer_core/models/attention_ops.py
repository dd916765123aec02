"""Multi-head attention on diffusers ``Attention`` weights, run with ``scaled_dot_product_attention``.

The diffusers ``Attention`` module is used only as the parameter container that gives the
official key layout (``to_q``, ``to_k``, ``to_v``, ``to_out.0``); the computation here lets
callers project keys/values once and reuse them (reference tokens, per-frame contexts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import nn


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[..., L, heads*d] -> [..., heads, L, d]`` (a view)."""
    return x.unflatten(-1, (heads, -1)).transpose(-3, -2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[..., heads, L, d] -> [..., L, heads*d]``."""
    return x.transpose(-3, -2).flatten(-2)


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Attention over already projected ``[..., L, inner]`` tensors; returns ``[..., Lq, inner]``.

    Leading dims are flattened so the fused 4-D SDPA kernels apply (temporal attention runs
    over ``[b, hw, frames, inner]``).
    """
    lead = q.shape[:-2]
    q, k, v = (split_heads(t.reshape(-1, *t.shape[-2:]), heads) for t in (q, k, v))
    out = merge_heads(F.scaled_dot_product_attention(q, k, v))
    return out.reshape(*lead, *out.shape[-2:])


def project_qkv(attn: Attention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Self-attention projections of ``x`` in one matrix product (the projections have no bias)."""
    weight = torch.cat([attn.to_q.weight, attn.to_k.weight, attn.to_v.weight])
    return F.linear(x, weight).chunk(3, dim=-1)


def attention(attn: Attention, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    """Plain (self- or cross-) attention of ``x [..., L, C]`` over ``context`` (default ``x``).

    A strided ``x`` (e.g. some frames of a token grid) is copied first: projecting the view
    would run as a batched product with the weight broadcast (slow, in bfloat16 above all).
    """
    x = x.contiguous()
    if context is None:
        q, k, v = project_qkv(attn, x)
        return attn.to_out[0](sdpa(q, k, v, attn.heads))
    return cross_attention(attn, x, (attn.to_k(context), attn.to_v(context)))


def cross_attention(attn: Attention, x: torch.Tensor, context_kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Attention of ``x`` over context keys/values already projected by ``attn.to_k/to_v``."""
    return attn.to_out[0](sdpa(attn.to_q(x.contiguous()), *context_kv, attn.heads))


# Tokens per feed-forward block are chosen so the GEGLU's 8x-wide projection stays near this many elements.
FF_BLOCK_ELEMENTS = 2**24


def feed_forward_residual(ff: nn.Module, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``ff(norm(x)) + x`` computed in place in ``x`` (a fresh tensor owned by the caller) one block of
    tokens at a time. Every token is independent here, so the result is the same as in one piece,
    but the GEGLU's wide intermediate never exists for the whole batch (lower peak memory).

    When autograd records (training), the in-place blocks would overwrite tensors saved for the
    backward pass, so the sum is computed out of place in one piece instead."""
    if torch.is_grad_enabled():
        return x + ff(norm(x))
    if not x.is_contiguous():
        x = x.contiguous()
    flat = x.view(-1, x.shape[-1])
    rows = max(1, FF_BLOCK_ELEMENTS // (8 * x.shape[-1]))
    for block in flat.split(rows):
        block += ff(norm(block))
    return x
