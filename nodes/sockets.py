"""The pack's custom socket types (V3 ``io.Custom``); payloads are in ``payloads``."""

from comfy_api.latest import io

SingerModelSocket = io.Custom("SINGER_MODEL")
