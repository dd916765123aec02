"""Bounded-memory encoding of long songs.

The wav2vec2 transformer attends over every frame of the song at once, so a several-minute song would build
an attention over thousands of frames in every layer. Beyond ``LongAudioPolicy.max_one_shot_frames`` the
transformer runs on overlapping windows instead: each window is a core of ``chunk_frames`` frames plus
``context_frames`` of real audio each side (more than the 64-frame half width of the positional convolution),
and only the core's outputs are kept. Attention beyond the context is cut, so the result differs slightly from
the one-shot computation (measured in ``tests/test_audio_long.py``). Songs up to the threshold take the exact
official one-shot path.

The conv feature encoder is run in pieces of ``conv_piece_frames`` (5 s) when the song is longer than
``conv_chunk_frames`` (30 s): that equals the one-shot result up to float rounding (see ``wav2vec.conv_features``)
and keeps its 512-channel first-layer activations small (the normalised input is then made piece by piece too,
``features.NormalizedSong``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import Wav2Vec2Model

from singer_core.audio.wav2vec import encoder_hidden_states
from singer_core.errors import InputError


@dataclass(frozen=True)
class LongAudioPolicy:
    """When and how to split a long song (frames are 25 fps video frames; conv frames are 50 Hz)."""

    max_one_shot_frames: int = 3000  # 2 minutes: up to here the result is the official one-shot computation
    chunk_frames: int = 1500  # 60 s kept per transformer window
    context_frames: int = 250  # 10 s of extra context each side of a window
    conv_chunk_frames: int = 1500  # 50 Hz conv frames (30 s): longer songs run the conv encoder in pieces
    conv_piece_frames: int = 250  # 50 Hz conv frames (5 s) per piece (wav2vec2-base: ~170 MB of activations)

    def __post_init__(self) -> None:
        frames = (self.max_one_shot_frames, self.chunk_frames, self.conv_chunk_frames, self.conv_piece_frames)
        if min(frames) < 1 or self.context_frames < 0:
            raise InputError(
                f"Long-audio settings must be positive frame counts (context may be 0); got {self}. "
                "Leave them at their defaults unless you know you need other windows."
            )

    def is_long(self, frames: int) -> bool:
        return frames > self.max_one_shot_frames


@torch.no_grad()
def chunked_hidden_states(model: Wav2Vec2Model, hidden: torch.Tensor, policy: LongAudioPolicy) -> list[torch.Tensor]:
    """``encoder_hidden_states`` over overlapping windows, stitched: same output layout, bounded attention."""
    total = hidden.shape[1]
    per_layer: list[torch.Tensor] = []  # each layer's output for the whole song, filled window by window
    for start in range(0, total, policy.chunk_frames):
        stop = min(start + policy.chunk_frames, total)
        lo, hi = max(0, start - policy.context_frames), min(total, stop + policy.context_frames)
        outputs = encoder_hidden_states(model, hidden[:, lo:hi])
        if not per_layer:
            per_layer = [output.new_empty(output.shape[0], total, output.shape[2]) for output in outputs]
        for kept, output in zip(per_layer, outputs, strict=True):
            kept[:, start:stop] = output[:, start - lo : stop - lo]
        del outputs
    return per_layer
