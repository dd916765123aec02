"""How much memory one generation needs on top of the weights (for hosts that manage device memory).

ComfyUI frees room for a model with ``load_models_gpu(..., memory_required=...)``: the working memory
of the run, beyond the weights themselves. It grows with the work, not with the song (clips are done
one after another), so it is estimated from one clip's shape. See ``docs/memory.md`` for the formula,
how it was measured and how well it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from singer_core.config import NetConfig

LATENT_DOWNSCALE = 8  # the SD VAE: one latent cell per 8x8 pixels
# Activation elements per element of the channel area (see ``channel_area`` and docs/memory.md):
# DENOISE_FACTOR per frame of the denoising batch, BANK_FACTOR per frame of the reference write pass
# (reference + motion frames; its features are kept for every step of the clip). Their ratio and the
# scaling with size, clip length and motion frames were fitted with the tiny net; the level was fitted on
# the full-size architecture (random bf16 weights, 128 and 192 px, CPU) and raised by 25 % as a margin.
DENOISE_FACTOR = 9.5
BANK_FACTOR = 17.5
FIXED_OVERHEAD = 64 * 2**20  # scheduler state, audio tokens, masks, allocator slack (measured 10-26 MB)


@dataclass(frozen=True)
class WorkShape:
    """The facts of a run that decide its working memory."""

    width: int
    height: int
    clip_length: int
    motion_frames: int
    cfg: bool  # guidance > 1: the UNet runs on the (unconditional, conditional) pair
    dtype: torch.dtype


def channel_area(config: NetConfig, width: int, height: int) -> int:
    """Sum over the UNet's levels of channels x latent cells at that level, times the feature maps each
    level keeps for the skip connections (``layers_per_block + 1``): the size of one frame's feature maps
    through the UNet, the unit its activations scale with."""
    cells = (width // LATENT_DOWNSCALE) * (height // LATENT_DOWNSCALE)
    channels = config.unet["block_out_channels"]
    per_level = config.unet.get("layers_per_block", 2) + 1
    return per_level * sum(c * cells // 4**level for level, c in enumerate(channels))


def estimate_working_memory(config: NetConfig, shape: WorkShape) -> int:
    """Bytes one clip's work needs beyond the weights: the denoising batch (clip_length frames, twice
    with CFG) and the reference write pass over the reference + motion frames, both in ``shape.dtype``."""
    area = channel_area(config, shape.width, shape.height)
    element = torch.empty((), dtype=shape.dtype).element_size()
    denoise_frames = shape.clip_length * (2 if shape.cfg else 1)
    bank_frames = 1 + shape.motion_frames
    activations = area * element * (DENOISE_FACTOR * denoise_frames + BANK_FACTOR * bank_frames)
    return int(activations + FIXED_OVERHEAD)


AUDIO_RATE = 16000  # wav2vec2's input rate
CONV_STRIDE = 320  # samples per wav2vec2 frame (50 Hz)
FIRST_CONV_STRIDE = 5  # the feature encoder's first layer keeps 1 of 5 samples, 512 channels
FIRST_CONV_CHANNELS = 512


def estimate_audio_encoder_memory(seconds: float, hidden: int, layers: int, heads: int, dtype: torch.dtype,
                                  policy=None) -> int:
    """Bytes wav2vec2 needs beyond its weights to encode ``seconds`` of song (``singer_core.audio``'s
    path): the feature encoder's first layer on one piece (at most ``conv_chunk_frames``), one attention
    matrix per head over the largest transformer window, and every layer's hidden states of the song
    (kept: SINGER uses all of them). A bound from the tensor shapes, not a fitted figure (docs/memory.md)."""
    from singer_core.audio.chunking import LongAudioPolicy

    policy = policy or LongAudioPolicy()
    element = torch.empty((), dtype=dtype).element_size()
    frames = int(seconds * AUDIO_RATE / CONV_STRIDE) + 1  # 50 Hz
    video_frames = seconds * 25
    window = frames if not policy.is_long(int(video_frames)) else 2 * (policy.chunk_frames + 2 * policy.context_frames)
    piece = min(frames, policy.conv_chunk_frames) * CONV_STRIDE
    conv = 3 * FIRST_CONV_CHANNELS * (piece // FIRST_CONV_STRIDE) * element  # output, norm, activation
    attention = 2 * heads * window * window * element  # scores and their softmax
    states = (layers + 1) * frames * hidden * element * 2  # kept per layer, plus the stitched copy
    return int(conv + attention + states + FIXED_OVERHEAD)
