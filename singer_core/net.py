"""The SINGER / Hallo ``Net`` container (official ``scripts/inference_new.py`` key layout).

``SingerNet(config).load_state_dict(official_state_dict, strict=True)`` loads the released
checkpoints key for key: prefixes ``reference_unet.``, ``denoising_unet.``, ``face_locator.``,
``imageproj.``, ``audioproj.`` and, for SINGER only, ``audioembed.`` (MSM); the SFM is
``denoising_unet.hidden_spectral_weighting`` (SINGER only).
"""

from __future__ import annotations

from torch import nn

from singer_core.config import NetConfig
from singer_core.models.audio_proj import AudioProjModel
from singer_core.models.face_locator import FaceLocator
from singer_core.models.image_proj import ImageProjModel
from singer_core.models.msm import MultiScaleSpectralModule
from singer_core.models.reference_unet import ReferenceUNet2D
from singer_core.models.unet_3d import DenoisingUNet3D
from singer_core.models.unet_spec import TemporalSpec, UNetSpec


class SingerNet(nn.Module):
    """All learned modules of one net; inference orchestration lives in ``singer_core.sampling``."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        spec = UNetSpec.from_config(config.unet)
        temporal = TemporalSpec.from_config(config.unet_additional_kwargs, spec.depth)
        self.reference_unet = ReferenceUNet2D(spec)
        self.denoising_unet = DenoisingUNet3D(spec, temporal, spectral_filter=config.sfm)
        self.face_locator = FaceLocator(**config.face_locator)
        self.imageproj = ImageProjModel(**config.image_proj)
        self.audioproj = AudioProjModel(**config.audio_proj)
        self.audioembed = MultiScaleSpectralModule(config.msm) if config.msm is not None else None

    @property
    def is_singer(self) -> bool:
        """True when MSM and SFM are present (SINGER); False for Hallo."""
        return self.audioembed is not None
