"""Thin ComfyUI (V3 API) adapters around ``singer_core``.

Only ``extension`` and the node modules import ComfyUI; ``model_paths`` and
``payloads`` do not, so tools and tests can use them without a server.
"""
