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
    """Joins decoded clips into one frame sequence, cross-fading overlaps, and hands each frame out as
    soon as it is final, so a song is never held whole (memory bounded by a clip, not the song).

    ``add`` returns the frames a clip made final: all but its last ``overlap`` frames, which wait for
    the next clip's blend; ``finish`` returns those. ``window`` serves the frames the next clip is
    driven by (its motion frames) from the last ``history`` final frames and the waiting tail.
    """

    def __init__(self, overlap: int, history: int = 0) -> None:
        self.overlap, self.history = overlap, history
        self.count = 0  # frames handed out so far
        self.recent: torch.Tensor | None = None  # the last ``history`` of them
        self.pending: torch.Tensor | None = None  # the latest clip's last ``overlap`` frames

    def add(self, clip_frames: torch.Tensor) -> torch.Tensor:
        """Append a clip's frames [f, ...] (its first ``overlap`` frames blend with the waiting tail);
        returns the frames that are now final."""
        if self.pending is not None:
            head = crossfade(self.pending, clip_frames[: self.overlap])
            clip_frames = torch.cat([head, clip_frames[self.overlap :]])
        if self.overlap:
            final, self.pending = clip_frames[: -self.overlap], clip_frames[-self.overlap :]
        else:
            final = clip_frames
        return self._hand_out(final)

    def finish(self) -> torch.Tensor | None:
        """The waiting tail (None without overlap or before the first clip)."""
        tail, self.pending = self.pending, None
        return None if tail is None else self._hand_out(tail)

    def _hand_out(self, final: torch.Tensor) -> torch.Tensor:
        if self.history:
            kept = final if self.recent is None else torch.cat([self.recent, final])
            self.recent = kept[-self.history :].clone()  # a copy: the clip itself is not kept alive
        self.count += final.shape[0]
        return final

    def window(self, start: int, stop: int) -> torch.Tensor:
        """Frames ``[start, stop)`` of the sequence so far; only the last ``history`` final frames and the
        waiting tail are still held."""
        held = [part for part in (self.recent, self.pending) if part is not None]
        first = self.count - (0 if self.recent is None else self.recent.shape[0])
        total = self.count + (0 if self.pending is None else self.pending.shape[0])
        if start < first or stop > total or start >= stop:
            raise ValueError(f"frames {start}..{stop} are not held (held: {first}..{total}).")
        return torch.cat(held)[start - first : stop - first]
