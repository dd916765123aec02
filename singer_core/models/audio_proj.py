"""Audio projection: wav2vec feature windows -> per-frame audio context tokens.

Official class: ``AudioProjModel`` (the Net's ``audioproj``), fixtures README section 4.
"""

from __future__ import annotations

import torch
from torch import nn

from singer_core.errors import InputError


class AudioProjModel(nn.Module):
    """``[bz, f, seq_len, blocks, channels] -> [bz, f, context_tokens, output_dim]``.

    Each frame's window is flattened in (window, block, channel) order, sent through three
    linear layers (ReLU between) and reshaped to tokens, which are layer-normalised.
    """

    def __init__(
        self,
        seq_len: int = 5,
        blocks: int = 12,
        channels: int = 768,
        intermediate_dim: int = 512,
        output_dim: int = 768,
        context_tokens: int = 32,
    ) -> None:
        super().__init__()
        self.window_shape = (seq_len, blocks, channels)
        self.context_tokens = context_tokens
        self.output_dim = output_dim
        self.proj1 = nn.Linear(seq_len * blocks * channels, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, context_tokens * output_dim)
        self.norm = nn.LayerNorm(output_dim)

    def forward(self, audio_windows: torch.Tensor) -> torch.Tensor:
        if audio_windows.dim() != 5 or tuple(audio_windows.shape[2:]) != self.window_shape:
            raise InputError(
                f"Audio projection: expected audio windows [batch, frames, {', '.join(map(str, self.window_shape))}] "
                f"(window, wav2vec layers, hidden size), got {tuple(audio_windows.shape)}. "
                "The audio features must come from the wav2vec model this checkpoint was trained with."
            )
        batch, frames = audio_windows.shape[:2]
        hidden = audio_windows.reshape(batch * frames, -1)
        hidden = torch.relu(self.proj1(hidden))
        hidden = torch.relu(self.proj2(hidden))
        tokens = self.proj3(hidden).reshape(batch * frames, self.context_tokens, self.output_dim)
        return self.norm(tokens).reshape(batch, frames, self.context_tokens, self.output_dim)
