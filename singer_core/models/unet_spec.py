"""Typed view of the UNet configuration (SD ``unet/config.json`` + ``unet_additional_kwargs``).

Only the architecture the official SINGER/Hallo checkpoints use is supported; any other
setting is refused here with a clear message instead of silently building a different net.
"""

from __future__ import annotations

from dataclasses import dataclass

from singer_core.errors import CheckpointError

_REQUIRED_2D = {
    "act_fn": "silu",
    "use_linear_projection": False,
    "only_cross_attention": False,
    "dual_cross_attention": False,
    "class_embed_type": None,
    "num_class_embeds": None,
    "resnet_time_scale_shift": "default",
    "center_input_sample": False,
}
_REQUIRED_3D = {
    "use_inflated_groupnorm": True,
    "use_motion_module": True,
    "use_audio_module": True,
    "motion_module_type": "Vanilla",
    "motion_module_decoder_only": False,
    "unet_use_cross_frame_attention": False,
    "unet_use_temporal_attention": False,
}


def _require(config: dict, required: dict, what: str) -> None:
    for key, expected in required.items():
        value = config.get(key, expected)
        if value is None and expected is False:
            continue
        if value != expected:
            raise CheckpointError(f"{what}: unsupported setting {key}={value!r} (SINGER nets use {expected!r}).")


@dataclass(frozen=True)
class UNetSpec:
    """Spatial architecture shared by the reference and the denoising UNet."""

    in_channels: int
    out_channels: int
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    heads: tuple[int, ...]  # per down block; the config's "attention_head_dim" (quirk 13 of docs/official_quirks.md)
    cross_attention_dim: int
    norm_num_groups: int
    norm_eps: float
    flip_sin_to_cos: bool
    freq_shift: int
    downsample_padding: int
    mid_block_scale_factor: float
    down_attention: tuple[bool, ...]
    up_attention: tuple[bool, ...]

    @classmethod
    def from_config(cls, config: dict) -> UNetSpec:
        _require(config, _REQUIRED_2D, "UNet config")
        channels = tuple(config["block_out_channels"])
        heads = config["attention_head_dim"]
        heads = tuple(heads) if isinstance(heads, list | tuple) else (heads,) * len(channels)
        return cls(
            in_channels=config["in_channels"],
            out_channels=config["out_channels"],
            block_out_channels=channels,
            layers_per_block=config["layers_per_block"],
            heads=heads,
            cross_attention_dim=config["cross_attention_dim"],
            norm_num_groups=config["norm_num_groups"],
            norm_eps=config["norm_eps"],
            flip_sin_to_cos=config["flip_sin_to_cos"],
            freq_shift=config["freq_shift"],
            downsample_padding=config.get("downsample_padding", 1),
            mid_block_scale_factor=config.get("mid_block_scale_factor", 1.0),
            down_attention=tuple(t.startswith("CrossAttn") for t in config["down_block_types"]),
            up_attention=tuple(t.startswith("CrossAttn") for t in config["up_block_types"]),
        )

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4

    @property
    def depth(self) -> int:
        return len(self.block_out_channels)

    def up_channels(self, i: int) -> tuple[int, int, int]:
        """``(in, prev_output, out)`` channels of up block ``i`` (diffusers' convention)."""
        rev = self.block_out_channels[::-1]
        return rev[min(i + 1, self.depth - 1)], rev[max(i - 1, 0)], rev[i]


@dataclass(frozen=True)
class TemporalSpec:
    """Motion- and audio-module settings of the denoising UNet (``unet_additional_kwargs``)."""

    motion_heads: int
    motion_layers: int
    motion_attention_blocks: int
    motion_dim_div: int
    motion_pe_max_len: int
    motion_resolutions: tuple[int, ...]
    motion_mid_block: bool
    audio_attention_dim: int

    @classmethod
    def from_config(cls, kwargs: dict, depth: int) -> TemporalSpec:
        _require(kwargs, _REQUIRED_3D, "unet_additional_kwargs")
        mm = kwargs["motion_module_kwargs"]
        if any(t != "Temporal_Self" for t in mm["attention_block_types"]) or not mm["temporal_position_encoding"]:
            raise CheckpointError("motion_module_kwargs: only Temporal_Self blocks with position encoding")
        names = set(kwargs.get("stack_enable_blocks_name") or ())
        depths = set(kwargs.get("stack_enable_blocks_depth") or ())
        if names != {"up", "down", "mid"} or depths != set(range(depth)):
            raise CheckpointError("unet_additional_kwargs: the audio modules must be stacked in every block.")
        return cls(
            motion_heads=mm["num_attention_heads"],
            motion_layers=mm["num_transformer_block"],
            motion_attention_blocks=len(mm["attention_block_types"]),
            motion_dim_div=mm.get("temporal_attention_dim_div", 1),
            motion_pe_max_len=mm["temporal_position_encoding_max_len"],
            motion_resolutions=tuple(kwargs["motion_module_resolutions"]),
            motion_mid_block=kwargs["motion_module_mid_block"],
            audio_attention_dim=kwargs["audio_attention_dim"],
        )
