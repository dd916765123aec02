"""Down / mid / up blocks of the denoising UNet (official ``unet_3d_blocks.py`` key layout).

Semantics are those of the official inference path, which runs the blocks' train-mode
branch (quirk 1 of docs/official_quirks.md): in cross-attention blocks each layer is resnet -> spatial transformer
(reference read) -> audio module (with ``motion_scale``) -> motion module (motion frames in
front); blocks without cross-attention run only their resnets, their motion modules exist
in the checkpoint but are never applied.
"""

from __future__ import annotations

import torch
from diffusers.models.downsampling import Downsample2D
from diffusers.models.upsampling import Upsample2D
from torch import nn

from singer_core.models.audio_attention import AudioAttentionModule
from singer_core.models.conditions import FrameConditions
from singer_core.models.motion_module import VanillaTemporalModule
from singer_core.models.resnet import resnet_block, up_block_resnets
from singer_core.models.spatial_transformer import SpatialTransformer
from singer_core.models.unet_spec import TemporalSpec, UNetSpec


def temporal_layer(
    attn: SpatialTransformer,
    audio: AudioAttentionModule,
    motion: VanillaTemporalModule | None,
    x: torch.Tensor,
    cond: FrameConditions,
) -> torch.Tensor:
    """Spatial transformer, audio module, motion module of one layer (``x [(b f), C, h, w]``)."""
    path, bank, dtype = attn.block_path, cond.bank, x.dtype
    ref_kv = bank.derive((attn, dtype), lambda: attn.reference_kv(bank.ref_tokens(path, dtype)))
    x = attn.forward_read(x, cond.context, ref_kv, cond.frames)
    x = audio(x, cond.audio, cond.masks[audio.level], cond.motion_scale, cond.silent_rows)
    if motion is not None:
        lead = bank.derive((motion, dtype), lambda: motion.motion_frame_states(bank.motion_tokens(path, dtype)))
        x = motion(x, lead, cond.halves)
    return x


class _TemporalLayers(nn.Module):
    """Builds the per-layer ``attentions`` / ``audio_modules`` / ``motion_modules`` lists."""

    def _build_layers(
        self, spec: UNetSpec, tspec: TemporalSpec, prefix: str, channels: int, widths: list[int], heads: int,
        level: int, attention: bool, motion: bool,
    ) -> None:
        groups = spec.norm_num_groups
        if attention:
            self.attentions = nn.ModuleList(
                [
                    SpatialTransformer(channels, heads, spec.cross_attention_dim, groups, f"{prefix}.attentions.{j}")
                    for j in range(len(widths))
                ]
            )
            self.audio_modules = nn.ModuleList(
                [AudioAttentionModule(channels, w, heads, tspec.audio_attention_dim, groups, level) for w in widths]
            )
        else:
            self.attentions = self.audio_modules = None
        self.motion_modules = (
            nn.ModuleList([VanillaTemporalModule(channels, tspec) for _ in widths]) if motion else None
        )

    def layer_tail(self, j: int, x: torch.Tensor, cond: FrameConditions) -> torch.Tensor:
        if self.attentions is None:
            return x
        motion = self.motion_modules[j] if self.motion_modules is not None else None
        return temporal_layer(self.attentions[j], self.audio_modules[j], motion, x, cond)


class DenoiseDownBlock(_TemporalLayers):
    def __init__(self, spec: UNetSpec, tspec: TemporalSpec, i: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        layers = spec.layers_per_block
        inputs = [in_channels] + [out_channels] * (layers - 1)
        self.resnets = nn.ModuleList([resnet_block(spec, c, out_channels) for c in inputs])
        self._build_layers(
            spec, tspec, f"down_blocks.{i}", out_channels, inputs, spec.heads[i], level=i,
            attention=spec.down_attention[i], motion=2**i in tspec.motion_resolutions,
        )
        if i < spec.depth - 1:
            self.downsamplers = nn.ModuleList(
                [Downsample2D(out_channels, use_conv=True, out_channels=out_channels,
                              padding=spec.downsample_padding, name="op")]
            )
        else:
            self.downsamplers = None

    def forward(self, x: torch.Tensor, temb: torch.Tensor, cond: FrameConditions):
        skips = []
        for j, resnet in enumerate(self.resnets):
            x = self.layer_tail(j, resnet(x, temb), cond)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class DenoiseMidBlock(_TemporalLayers):
    def __init__(self, spec: UNetSpec, tspec: TemporalSpec) -> None:
        super().__init__()
        channels = spec.block_out_channels[-1]
        scale = spec.mid_block_scale_factor
        self.resnets = nn.ModuleList([resnet_block(spec, channels, channels, scale) for _ in range(2)])
        self._build_layers(
            spec, tspec, "mid_block", channels, [channels], spec.heads[-1], level=spec.depth - 1,
            attention=True, motion=tspec.motion_mid_block,
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor, cond: FrameConditions) -> torch.Tensor:
        x = self.layer_tail(0, self.resnets[0](x, temb), cond)
        return self.resnets[1](x, temb)


class DenoiseUpBlock(_TemporalLayers):
    def __init__(self, spec: UNetSpec, tspec: TemporalSpec, i: int) -> None:
        super().__init__()
        in_channels, _, out_channels = spec.up_channels(i)
        layers = spec.layers_per_block + 1
        self.resnets = up_block_resnets(spec, i)
        level = spec.depth - 1 - i
        self._build_layers(
            spec, tspec, f"up_blocks.{i}", out_channels, [in_channels] * layers, spec.heads[::-1][i], level=level,
            attention=spec.up_attention[i], motion=2**level in tspec.motion_resolutions,
        )
        if i < spec.depth - 1:
            self.upsamplers = nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)])
        else:
            self.upsamplers = None

    def forward(self, x, skips: list[torch.Tensor], temb, cond: FrameConditions, upsample_size=None):
        for j, resnet in enumerate(self.resnets):
            x = self.layer_tail(j, resnet(torch.cat([x, skips.pop()], dim=1), temb), cond)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, upsample_size)
        return x
