"""What travels along the pack's custom sockets (no ComfyUI import here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from singer_core.net import SingerNet


@dataclass
class SingerModel:
    """A loaded SINGER (or Hallo) network and the file it came from."""

    net: SingerNet
    source_path: str

    def __str__(self) -> str:
        """One line for people (e.g. ComfyUI's 'Preview as Text'); the net's own repr is thousands of lines."""
        kind = "SINGER" if self.net.is_singer else "Hallo"
        first = next(self.net.parameters())
        count = sum(p.numel() for p in self.net.parameters())
        name = os.path.basename(self.source_path)
        return f"{kind} net from {name}: {count / 1e6:.2f} M parameters, {str(first.dtype).removeprefix('torch.')}"

    __repr__ = __str__
