"""Helpers for tests that drive the pack inside a real ComfyUI server.

The server side lives in ``tools/comfy_host.py``; this module loads it and
adds a small builder for API-format prompts.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_comfy_host():
    """Import ``tools/comfy_host.py`` (``tools`` is not a package)."""
    name = "singer_comfy_host"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / "comfy_host.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class Prompt:
    """Builds an API-format prompt: ``{node_id: {"class_type": ..., "inputs": {...}}}``."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict] = {}

    def add(self, class_type: str, **inputs) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id

    @staticmethod
    def out(node_id: str, slot: int = 0) -> list:
        """A link to output ``slot`` of node ``node_id``, usable as an input value."""
        return [node_id, slot]

    def api(self) -> dict:
        return {k: {"class_type": v["class_type"], "inputs": dict(v["inputs"])} for k, v in self.nodes.items()}
