"""Architecture description of a SINGER / Hallo ``Net``.

One dataclass carries everything needed to rebuild the six sub-modules of the
official ``Net`` container (reference UNet, denoising UNet, FaceLocator,
ImageProj, AudioProj, MSM). It reads the fixtures' ``modules`` JSON form (the
form ``--config`` of the converter takes) and round-trips through JSON so it can
live in safetensors metadata. The wavelet modules' settings are typed: ``MsmConfig`` and ``SfmConfig``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

SD15_UNET_CONFIG: dict = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

# `unet_additional_kwargs` of the official configs/inference/inference.yaml.
INFERENCE_UNET_KWARGS: dict = {
    "use_inflated_groupnorm": True,
    "unet_use_cross_frame_attention": False,
    "unet_use_temporal_attention": False,
    "use_motion_module": True,
    "use_audio_module": True,
    "motion_module_resolutions": [1, 2, 4, 8],
    "motion_module_mid_block": True,
    "motion_module_decoder_only": False,
    "motion_module_type": "Vanilla",
    "motion_module_kwargs": {
        "num_attention_heads": 8,
        "num_transformer_block": 1,
        "attention_block_types": ["Temporal_Self", "Temporal_Self"],
        "temporal_position_encoding": True,
        "temporal_position_encoding_max_len": 32,
        "temporal_attention_dim_div": 1,
    },
    "audio_attention_dim": 768,
    "stack_enable_blocks_name": ["up", "down", "mid"],
    "stack_enable_blocks_depth": [0, 1, 2, 3],
}


@dataclass(frozen=True)
class MsmConfig:
    """Settings of the multi-scale spectral module (official ``MultiSpectralAttentionLayer``).

    The official constructor is positional, ``(batchsize, nframes, channel, dct_h, dct_w, chunk=4, reduction=16)``;
    full size ``(1, 14, 4, 64, 64)``. ``batchsize`` and ``nframes`` only shape the fixed ``dct_layer.weight``
    buffer (its sum over them is what counts, docs/official_quirks.md quirk 6); ``chunk`` is the fc width and
    must equal ``channel``; ``reduction`` is unused, as in the official code.
    """

    batchsize: int = 1
    nframes: int = 14
    channel: int = 4
    dct_h: int = 64
    dct_w: int = 64
    chunk: int = 4
    reduction: int = 16

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MsmConfig.{item.name} must be a positive integer, got {value!r}.")
        if self.chunk != self.channel:
            raise ValueError(f"MSM: chunk ({self.chunk}) must equal channel ({self.channel}); the fc acts on the "
                             "channels.")

    @property
    def official_args(self) -> list[int]:
        """The official positional arguments ``[batchsize, nframes, channel, dct_h, dct_w]``."""
        return [self.batchsize, self.nframes, self.channel, self.dct_h, self.dct_w]

    @classmethod
    def from_official_args(cls, args: Sequence[int], chunk: int = 4, reduction: int = 16) -> MsmConfig:
        batchsize, nframes, channel, dct_h, dct_w = (int(v) for v in args)
        return cls(batchsize, nframes, channel, dct_h, dct_w, chunk, reduction)

    @classmethod
    def parse(cls, value: MsmConfig | Sequence[int] | Mapping | None) -> MsmConfig | None:
        """From any stored form: the official positional list (checkpoint metadata), a dict, or None."""
        if value is None or isinstance(value, MsmConfig):
            return value
        if isinstance(value, Mapping):
            return cls(**value)
        return cls.from_official_args(value)

    def to_json_value(self) -> list[int] | dict:
        """The positional list when chunk/reduction are the defaults (the stored form since the first release)."""
        if (self.chunk, self.reduction) == (4, 16):
            return self.official_args
        return asdict(self)


@dataclass(frozen=True)
class SfmConfig:
    """Settings of the spectral filter module (official ``hidden_spectral_weighting(chunks, channels, heads)``).

    ``channels`` is the mid-block width (``block_out_channels[-1]``, 1280 for SD 1.5) and ``heads`` the last
    ``attention_head_dim`` (8 for SD 1.5): its fc acts on the latent width, so the official code needs
    ``width == heads`` (quirk 7 of docs/official_quirks.md); ``chunks`` is one weight per Haar sub-band.
    """

    channels: int = 1280
    heads: int = 8
    chunks: int = 4  # one per Haar sub-band (singer_core.models.wavelets.SUBBANDS; checked by the module)

    def __post_init__(self) -> None:
        if self.channels < 1 or self.heads < 2:
            raise ValueError(f"SFM: channels must be >= 1 and heads >= 2, got {self.channels}, {self.heads}.")

    @classmethod
    def for_unet(cls, block_out_channels: Sequence[int], heads: Sequence[int]) -> SfmConfig:
        """The SFM that sits on this UNet's mid block."""
        return cls(channels=int(block_out_channels[-1]), heads=int(heads[-1]))


@dataclass
class NetConfig:
    """Constructor arguments of every sub-module of the official ``Net``.

    ``msm`` is the MSM's ``MsmConfig`` (stored in JSON as the official positional list
    ``[batchsize, nframes, channel, dct_h, dct_w]``; a list or dict given here is converted);
    ``sfm`` says whether the denoising UNet has the SFM, whose ``SfmConfig`` follows from the UNet
    (``SfmConfig.for_unet``). ``msm is None`` and ``sfm is False`` describe a Hallo net (no wavelet modules).
    """

    unet: dict = field(default_factory=lambda: copy.deepcopy(SD15_UNET_CONFIG))
    unet_additional_kwargs: dict = field(default_factory=lambda: copy.deepcopy(INFERENCE_UNET_KWARGS))
    face_locator: dict = field(default_factory=lambda: {"conditioning_embedding_channels": 320})
    image_proj: dict = field(
        default_factory=lambda: {"cross_attention_dim": 768, "clip_embeddings_dim": 512, "clip_extra_context_tokens": 4}
    )
    audio_proj: dict = field(
        default_factory=lambda: {
            "seq_len": 5,
            "blocks": 12,
            "channels": 768,
            "intermediate_dim": 512,
            "output_dim": 768,
            "context_tokens": 32,
        }
    )
    msm: MsmConfig | None = field(default_factory=MsmConfig)
    sfm: bool = True

    def __post_init__(self) -> None:
        self.msm = MsmConfig.parse(self.msm)

    @property
    def kind(self) -> str:
        return "singer" if self.sfm else "hallo"

    @classmethod
    def singer(cls) -> NetConfig:
        """Full-size SINGER (SD 1.5 UNet, the released ``net.pth``)."""
        return cls()

    @classmethod
    def hallo(cls) -> NetConfig:
        """Full-size Hallo: the same net without MSM and SFM."""
        return cls(msm=None, sfm=False)

    @classmethod
    def from_modules_json(cls, modules: dict, kind: str = "singer") -> NetConfig:
        """Build from the fixtures' ``modules`` form (``net_tiny.json["modules"]``)."""
        fl = dict(modules["face_locator"]["kwargs"])
        audioembed = modules.get("audioembed")
        singer = kind == "singer" and audioembed is not None
        return cls(
            unet={k: v for k, v in modules["reference_unet"]["config_json"].items() if not k.startswith("_")},
            unet_additional_kwargs=copy.deepcopy(modules["denoising_unet"]["unet_additional_kwargs"]),
            face_locator=fl,
            image_proj=dict(modules["imageproj"]["kwargs"]),
            audio_proj=dict(modules["audioproj"]["kwargs"]),
            msm=MsmConfig.from_official_args(audioembed["args_in_order"]) if singer else None,
            sfm=singer,
        )

    def to_json(self) -> str:
        data = asdict(self)
        data["msm"] = None if self.msm is None else self.msm.to_json_value()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NetConfig:
        return cls(**json.loads(text))

    @classmethod
    def from_file(cls, path: str | Path) -> NetConfig:
        """Read either our own JSON form or a fixture-style net config file."""
        data = json.loads(Path(path).read_text())
        if "modules" in data:
            return cls.from_modules_json(data["modules"])
        if "reference_unet" in data:
            return cls.from_modules_json(data)
        return cls(**data)
