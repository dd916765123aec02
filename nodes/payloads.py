"""What travels along the pack's custom sockets (no ComfyUI import here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class SingerModel:
    """A loaded SINGER network and the file it came from."""

    net: torch.nn.Module
    source_path: str
