"""The working-memory estimate ComfyUI is asked to free for a generation (formula in docs/memory.md)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from singer_core.config import NetConfig
from singer_core.pipeline.memory import (
    FIXED_OVERHEAD,
    WorkShape,
    channel_area,
    estimate_audio_encoder_memory,
    estimate_working_memory,
)

OFFICIAL = WorkShape(width=512, height=512, clip_length=16, motion_frames=2, cfg=True, dtype=torch.float16)


def _work(shape: WorkShape) -> int:
    return estimate_working_memory(NetConfig.singer(), shape) - FIXED_OVERHEAD


def test_channel_area_of_the_sd15_unet():
    # 64x64 latent cells; levels of 320, 640, 1280, 1280 channels at 1, 1/4, 1/16, 1/64 of the cells; 3 maps each
    assert channel_area(NetConfig.singer(), 512, 512) == 3 * 4096 * (320 + 160 + 80 + 20)


def test_official_settings_need_a_few_gigabytes():
    assert 3 * 2**30 < estimate_working_memory(NetConfig.singer(), OFFICIAL) < 8 * 2**30


@pytest.mark.parametrize(
    ("change", "ratio"),
    [({"dtype": torch.float32}, 2.0), ({"width": 1024, "height": 1024}, 4.0)],
)
def test_scales_with_the_element_size_and_the_area(change, ratio):
    assert _work(dataclasses.replace(OFFICIAL, **change)) == pytest.approx(ratio * _work(OFFICIAL), rel=1e-6)


def test_grows_with_the_clip_the_motion_frames_and_cfg():
    longer = _work(dataclasses.replace(OFFICIAL, clip_length=24))
    more_motion = _work(dataclasses.replace(OFFICIAL, motion_frames=4))
    no_cfg = _work(dataclasses.replace(OFFICIAL, cfg=False))
    assert longer > _work(OFFICIAL) and more_motion > _work(OFFICIAL)
    assert _work(OFFICIAL) / 2 < no_cfg < _work(OFFICIAL)  # half the denoising batch, the same write pass


def test_the_tiny_net_needs_less():
    from tests.tiny_models.net import tiny_net_config

    assert estimate_working_memory(tiny_net_config(), OFFICIAL) < estimate_working_memory(NetConfig.singer(), OFFICIAL)


def test_audio_encoder_memory_is_bounded_for_long_songs():
    def audio(seconds: float) -> int:
        return estimate_audio_encoder_memory(seconds, hidden=768, layers=12, heads=12, dtype=torch.float32)

    assert audio(10) < audio(60) < audio(120)
    assert audio(600) < 2 * audio(120)  # windows past two minutes: attention stops growing, states grow linearly
