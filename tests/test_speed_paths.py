"""The work-saving paths of the denoising UNet give the same numbers as the plain computation.

The parity tests run them on the tiny fixture net; these check them directly, including cases
the tiny net does not reach (feed-forward in several token blocks, two transformer layers in
a motion module, a single temporal attention).
"""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention import FeedForward
from torch import nn

from singer_core.models import attention_ops
from singer_core.models.attention_ops import feed_forward_residual
from singer_core.models.audio_attention import AudioTransformerBlock
from singer_core.models.conditions import RegionMasks
from singer_core.models.motion_module import VanillaTemporalModule
from singer_core.models.reference_bank import ReferenceBank
from singer_core.models.unet_spec import TemporalSpec

ATOL = 1e-5


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Non-zero weights everywhere (the official zero-initialised convs would hide mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    return module.eval()


def test_feed_forward_in_token_blocks_equals_one_piece(monkeypatch) -> None:
    ff, norm = _randomize(FeedForward(32, activation_fn="geglu"), 0), _randomize(nn.LayerNorm(32), 1)
    x = torch.randn(3, 50, 32)
    expected = ff(norm(x)) + x
    monkeypatch.setattr(attention_ops, "FF_BLOCK_ELEMENTS", 8 * 32 * 7)  # 7 tokens per block
    with torch.no_grad():
        actual = feed_forward_residual(ff, norm, x.clone())
    assert (actual - expected).abs().max().item() <= ATOL


@pytest.mark.parametrize(("layers", "attentions", "n_motion"), [(1, 2, 2), (2, 2, 2), (1, 1, 3), (1, 2, 0)])
def test_motion_module_with_precomputed_motion_frames(layers: int, attentions: int, n_motion: int) -> None:
    """Per-clip motion-frame states + dropped motion-frame outputs == all frames through every layer."""
    spec = TemporalSpec(motion_heads=2, motion_layers=layers, motion_attention_blocks=attentions, motion_dim_div=1,
                        motion_pe_max_len=24, motion_resolutions=(1,), motion_mid_block=False,
                        audio_attention_dim=16)  # fmt: skip
    module = _randomize(VanillaTemporalModule(64, spec), 2)
    module.temporal_transformer.norm = _randomize(nn.GroupNorm(32, 64, eps=1e-6), 3)
    batch, frames, side = 2, 3, 4
    x = torch.randn(batch * frames, 64, side, side)
    motion = torch.randn(batch, n_motion, side * side, 64)
    with torch.no_grad():
        actual = module(x, module.motion_frame_states(motion), batch)
        expected = _motion_reference(module.temporal_transformer, x, motion, batch)
    assert (actual - expected).abs().max().item() <= ATOL


def _motion_reference(tt, x: torch.Tensor, motion: torch.Tensor, batch: int) -> torch.Tensor:
    """Official order: motion frames in front, every frame through every attention, then dropped."""
    n_motion = motion.shape[1]
    maps = torch.cat([motion.transpose(2, 3).reshape(batch, n_motion, *x.shape[1:]), x.unflatten(0, (batch, -1))],
                     dim=1)  # fmt: skip
    tokens = tt.norm(maps.flatten(0, 1)).unflatten(0, (batch, -1)).flatten(3).permute(0, 3, 1, 2)
    tokens = tt.proj_in(tokens)
    for block in tt.transformer_blocks:
        for attn, norm in zip(block.attention_blocks, block.norms, strict=True):
            normed = norm(tokens) + attn.pos_encoder.pe[0, : tokens.shape[2]]
            tokens = attention_ops.attention(attn, normed) + tokens
        tokens = block.ff(block.ff_norm(tokens)) + tokens
    out = tt.proj_out(tokens)[:, :, n_motion:].permute(0, 2, 3, 1)  # [b, f, C, hw]
    return (x.unflatten(0, (batch, -1)).flatten(3) + out).reshape(x.shape)


def test_silent_audio_rows_skip_attention_with_the_same_result() -> None:
    block = _randomize(AudioTransformerBlock(64, heads=2, head_dim=32, audio_dim=48), 4)
    rows, tokens = 4, 10
    x = torch.randn(rows, tokens, 64)
    audio = torch.randn(rows, 5, 48)
    audio[:2] = 0
    masks = RegionMasks(*(torch.rand(rows, tokens, 1) for _ in range(3)))
    with torch.no_grad():
        expected = block(x, audio, masks, (1.0, 0.7, 1.3), silent=0)
        actual = block(x, audio, masks, (1.0, 0.7, 1.3), silent=2)
    assert (actual - expected).abs().max().item() <= ATOL


def test_bank_derived_values_are_memoised_and_cleared_by_writes() -> None:
    bank = ReferenceBank(halves=1)
    bank.write("a", torch.ones(3, 4, 8))
    calls = []
    first = bank.derive("k", lambda: calls.append(1) or torch.zeros(1))
    assert bank.derive("k", lambda: calls.append(1) or torch.ones(1)) is first
    assert len(calls) == 1
    bank.write("b", torch.ones(3, 4, 8))
    assert torch.equal(bank.derive("k", lambda: torch.ones(1)), torch.ones(1))
