"""SINGER for ComfyUI: one photo + a song -> a video of that person singing.

ComfyUI imports this file and calls ``comfy_entrypoint()`` (V3 node API).
Importing it has no side effects and needs no ComfyUI, so test runners can
import the repository as a package; the node modules are only loaded when
ComfyUI asks for the extension.
"""

import os
import sys


def _make_library_importable() -> None:
    """Let ``import singer_core`` find the library that ships in this folder.

    Appended, not prepended: this folder also holds a ``nodes`` package and
    ComfyUI's own ``nodes`` module must keep winning.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.append(here)


def comfy_entrypoint():
    """Return the ComfyExtension that lists this pack's nodes (called by ComfyUI)."""
    _make_library_importable()
    from .nodes.extension import SingerExtension

    return SingerExtension()
