"""How a song is cut into clips and how the clips are put back together.

Clip ``k`` covers output frames ``[k * stride, k * stride + clip_length)`` with
``stride = clip_length - overlap``. The frames just before a clip's start are its motion frames;
with ``overlap`` 0 (official) they are the previous clip's last frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ClipSpan:
    """One clip: its index and the output frames it covers."""

    index: int
    start: int
    length: int

    @property
    def stop(self) -> int:
        return self.start + self.length


def plan_clips(num_frames: int, clip_length: int, overlap: int = 0) -> list[ClipSpan]:
    """Enough clips to cover ``num_frames`` output frames (official: ``ceil(num_frames / clip_length)``)."""
    stride = clip_length - overlap
    extra = max(0, num_frames - clip_length)
    count = 1 + math.ceil(extra / stride)
    return [ClipSpan(k, k * stride, clip_length) for k in range(count)]


def pad_frames(tensor: torch.Tensor, length: int, dim: int = 0) -> torch.Tensor:
    """Extend ``tensor`` along ``dim`` to ``length`` by repeating its last entry (frames past the
    audio end are trimmed from the output anyway)."""
    missing = length - tensor.shape[dim]
    if missing <= 0:
        return tensor
    last = tensor.narrow(dim, tensor.shape[dim] - 1, 1)
    return torch.cat([tensor, last.expand(*[missing if d == dim else -1 for d in range(tensor.dim())])], dim=dim)


def crossfade(tail: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    """Blend the previous clip's ``tail`` into the next clip's ``head`` (same frames, axis 0) with
    weights for the new clip rising linearly from 1/(n+1) to n/(n+1)."""
    n = tail.shape[0]
    weight = torch.arange(1, n + 1, dtype=tail.dtype, device=tail.device) / (n + 1)
    weight = weight.view(n, *([1] * (tail.dim() - 1)))
    return tail * (1 - weight) + head * weight


class FrameAssembler:
    """Collects decoded clips into one frame sequence, cross-fading overlaps.

    Clips are kept as separate tensors (no re-concatenation per clip) so long songs stay linear.
    """

    def __init__(self, overlap: int) -> None:
        self.overlap = overlap
        self.pieces: list[torch.Tensor] = []

    @property
    def count(self) -> int:
        return sum(piece.shape[0] for piece in self.pieces)

    def add(self, clip_frames: torch.Tensor) -> None:
        """Append a clip's frames [f, ...]; its first ``overlap`` frames blend with the current tail."""
        if self.pieces and self.overlap:
            last = self.pieces[-1]
            self.pieces[-1] = last[: -self.overlap]
            head = crossfade(last[-self.overlap :], clip_frames[: self.overlap])
            clip_frames = torch.cat([head, clip_frames[self.overlap :]])
        self.pieces.append(clip_frames)

    def window(self, start: int, stop: int) -> torch.Tensor:
        """Frames ``[start, stop)`` of the sequence so far."""
        parts, offset = [], 0
        for piece in self.pieces:
            lo, hi = max(start - offset, 0), min(stop - offset, piece.shape[0])
            if lo < hi:
                parts.append(piece[lo:hi])
            offset += piece.shape[0]
        return torch.cat(parts)

    def result(self, length: int | None = None) -> torch.Tensor:
        """All frames, trimmed to ``length`` when given."""
        out = torch.cat(self.pieces)
        return out if length is None else out[:length]
