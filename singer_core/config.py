"""Architecture description of a SINGER / Hallo ``Net``.

One dataclass carries everything needed to rebuild the six sub-modules of the
official ``Net`` container (reference UNet, denoising UNet, FaceLocator,
ImageProj, AudioProj, MSM). It reads the fixtures' ``modules`` JSON form (the
form ``--config`` of the converter takes) and round-trips through JSON so it can
live in safetensors metadata.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
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


@dataclass
class NetConfig:
    """Constructor arguments of every sub-module of the official ``Net``.

    ``msm`` holds the positional arguments of ``MultiSpectralAttentionLayer``
    ``[batchsize, nframes, channel, dct_h, dct_w]``; ``msm is None`` and
    ``sfm is False`` describe a Hallo net (no wavelet modules).
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
    msm: list | None = field(default_factory=lambda: [1, 14, 4, 64, 64])
    sfm: bool = True

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
            msm=list(audioembed["args_in_order"]) if singer else None,
            sfm=singer,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

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
