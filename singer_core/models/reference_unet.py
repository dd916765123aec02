"""Reference UNet (official ``reference_unet``: an SD ``UNet2DConditionModel`` without
``conv_norm_out``/``conv_out``) whose only job is to fill the :class:`ReferenceBank`.

It runs once per clip at timestep 0 (quirk 5 of docs/official_quirks.md) and stops right after the last banked
``norm1``: the rest of the network never reaches the denoising UNet. Rows whose features are
already known (identical inputs, or the reference rows of the previous clip) are not run again;
see :mod:`singer_core.models.reference_rows`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from diffusers.models.downsampling import Downsample2D
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.upsampling import Upsample2D
from torch import nn

from singer_core.models.reference_bank import BANK_DTYPE, ReferenceBank
from singer_core.models.reference_rows import RowMemo, RowPlan, WriteRows
from singer_core.models.resnet import resnet_block, resnet_forward, up_block_resnets
from singer_core.models.spatial_transformer import SpatialTransformer
from singer_core.models.unet_spec import UNetSpec

BankWriter = Callable[[str, torch.Tensor], None]


class RefDownBlock(nn.Module):
    def __init__(self, spec: UNetSpec, i: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        layers = spec.layers_per_block
        self.resnets = nn.ModuleList(
            [resnet_block(spec, in_channels if j == 0 else out_channels, out_channels) for j in range(layers)]
        )
        if spec.down_attention[i]:
            self.attentions = nn.ModuleList(
                [
                    SpatialTransformer(
                        out_channels, spec.heads[i], spec.cross_attention_dim, spec.norm_num_groups,
                        f"down_blocks.{i}.attentions.{j}",
                    )
                    for j in range(layers)
                ]
            )
        else:
            self.attentions = None
        if i < spec.depth - 1:
            self.downsamplers = nn.ModuleList(
                [Downsample2D(out_channels, use_conv=True, out_channels=out_channels, padding=spec.downsample_padding,
                              name="op")]
            )
        else:
            self.downsamplers = None

    def forward(self, x, rows: WriteRows, write: BankWriter):
        skips = []
        for j, resnet in enumerate(self.resnets):
            x = resnet_forward(resnet, x, rows.time_bias[resnet])
            if self.attentions is not None:
                x = _write_layer(self.attentions[j], x, rows, write)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class RefMidBlock(nn.Module):
    def __init__(self, spec: UNetSpec) -> None:
        super().__init__()
        channels = spec.block_out_channels[-1]
        scale = spec.mid_block_scale_factor
        self.attentions = nn.ModuleList(
            [SpatialTransformer(channels, spec.heads[-1], spec.cross_attention_dim, spec.norm_num_groups,
                                "mid_block.attentions.0")]
        )
        self.resnets = nn.ModuleList([resnet_block(spec, channels, channels, scale) for _ in range(2)])

    def forward(self, x, rows: WriteRows, write: BankWriter):
        x = resnet_forward(self.resnets[0], x, rows.time_bias[self.resnets[0]])
        x = _write_layer(self.attentions[0], x, rows, write)
        return resnet_forward(self.resnets[1], x, rows.time_bias[self.resnets[1]])


class RefUpBlock(nn.Module):
    def __init__(self, spec: UNetSpec, i: int) -> None:
        super().__init__()
        out_channels = spec.up_channels(i)[2]
        layers = spec.layers_per_block + 1
        self.resnets = up_block_resnets(spec, i)
        heads = spec.heads[::-1][i]
        if spec.up_attention[i]:
            self.attentions = nn.ModuleList(
                [
                    SpatialTransformer(out_channels, heads, spec.cross_attention_dim, spec.norm_num_groups,
                                       f"up_blocks.{i}.attentions.{j}")
                    for j in range(layers)
                ]
            )
        else:
            self.attentions = None
        if i < spec.depth - 1:
            self.upsamplers = nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)])
        else:
            self.upsamplers = None

    def forward(self, x, skips, rows: WriteRows, write: BankWriter, upsample_size=None, last: bool = False):
        """With ``last`` the block stops after banking its last ``norm1`` and returns ``None``."""
        for j, resnet in enumerate(self.resnets):
            x = resnet_forward(resnet, torch.cat([x, skips.pop()], dim=1), rows.time_bias[resnet])
            if self.attentions is None:
                continue
            attn = self.attentions[j]
            if last and j == len(self.resnets) - 1:
                write(attn.block_path, attn.norm1_only(x))
                return None
            x = _write_layer(attn, x, rows, write)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, upsample_size)
        return x


class ReferenceUNet2D(nn.Module):
    """Official key layout of ``reference_unet`` (no ``conv_norm_out`` / ``conv_out``)."""

    def __init__(self, spec: UNetSpec) -> None:
        super().__init__()
        if not spec.up_attention[-1]:
            raise ValueError("ReferenceUNet2D: the last up block must have attentions (SD layout).")
        self.spec = spec
        channels = spec.block_out_channels
        self.conv_in = nn.Conv2d(spec.in_channels, channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(channels[0], spec.flip_sin_to_cos, spec.freq_shift)
        self.time_embedding = TimestepEmbedding(channels[0], spec.time_embed_dim)
        self.down_blocks = nn.ModuleList(
            [RefDownBlock(spec, i, channels[max(i - 1, 0)], channels[i]) for i in range(spec.depth)]
        )
        self.mid_block = RefMidBlock(spec)
        self.up_blocks = nn.ModuleList([RefUpBlock(spec, i) for i in range(spec.depth)])

    @torch.no_grad()
    def write_bank(
        self,
        ref_latents: torch.Tensor,
        uncond_tokens: torch.Tensor | None,
        cond_tokens: torch.Tensor,
        memo: RowMemo | None = None,
    ) -> ReferenceBank:
        """Write pass of the official pipeline.

        ``ref_latents`` ``[1 + n_motion, 4, h, w]`` = [reference, motion frames...] (scaled
        latents); ``uncond_tokens`` / ``cond_tokens`` ``[1, T, C]`` are the image-projection
        tokens. With CFG the official pass runs ``[ref, m..., ref, m...]`` with the conditions
        ``[u, c, u, c, ...]`` (quirk 3 of docs/official_quirks.md: they alternate per row, not per CFG half).
        Without CFG         (``uncond_tokens=None``) it runs ``[ref, m...]``, all with the face tokens. Only rows with
        new inputs run; ``memo`` (one per generation) carries the reference rows to the next clip.
        """
        tokens = cond_tokens if uncond_tokens is None else torch.cat([uncond_tokens, cond_tokens])
        rows = WriteRows.build(self, ref_latents, tokens)
        plan = RowPlan.build(rows, memo) if self._rows_independent(ref_latents) else RowPlan.every_row(len(rows))
        features = plan.gather(self.run_rows(rows.select(plan.compute)) if plan.compute else {})
        if memo is not None:
            memo.keep([(rows.signature(r), f) for r, f in enumerate(features) if rows.latent_index[r] == 0])
        bank = ReferenceBank(halves=tokens.shape[0])
        # Joining bank rows moves data only. Autocast treats stack as a type-promoting op, and CPU bf16 autocast
        # refuses the official float16 bank there ("Unexpected floating ScalarType"): joined outside it.
        with torch.autocast(ref_latents.device.type, enabled=False):
            for path in features[0]:
                bank.write(path, torch.stack([f[path] for f in features]))
        return bank

    def _rows_independent(self, latents: torch.Tensor) -> bool:
        """Rows are computed independently of the batch (up to fp32 rounding) unless the deepest level is one pixel
        (``RowPlan``)."""
        scale = 2 ** (self.spec.depth - 1)
        return math.ceil(latents.shape[-2] / scale) * math.ceil(latents.shape[-1] / scale) > 1

    def run_rows(self, rows: WriteRows) -> dict[str, torch.Tensor]:
        """Bank features ``{path: [rows, hw, c]}`` (bank dtype) of the given rows."""
        features: dict[str, torch.Tensor] = {}
        self.run(rows, lambda path, normed: features.__setitem__(path, normed.to(BANK_DTYPE)))
        return features

    def run(self, rows: WriteRows, write: BankWriter) -> None:
        x = self.conv_in(rows.latents)
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, rows, write)
            skips.extend(block_skips)
        x = self.mid_block(x, rows, write)
        for i, block in enumerate(self.up_blocks):
            last = i == len(self.up_blocks) - 1
            block_skips = [skips.pop() for _ in block.resnets][::-1]
            upsample_size = None if last else skips[-1].shape[-2:]  # also right for sizes not divisible by 8
            x = block(x, block_skips, rows, write, upsample_size, last=last)


def _write_layer(attn: SpatialTransformer, x: torch.Tensor, rows: WriteRows, write: BankWriter) -> torch.Tensor:
    """One spatial transformer in write mode: banks its ``norm1`` tokens, returns its output."""
    x, normed = attn.forward_write(x, rows.cross_kv[attn.transformer_blocks[0].attn2])
    write(attn.block_path, normed)
    return x
