"""The pack's custom socket types (V3 ``io.Custom``); payloads are in ``payloads``."""

from comfy_api.latest import io

SingerModelSocket = io.Custom("SINGER_MODEL")
AudioEncoderSocket = io.Custom("SINGER_AUDIO_ENCODER")
FaceAnalyzerSocket = io.Custom("SINGER_FACE_ANALYZER")
VocalSeparatorSocket = io.Custom("SINGER_VOCAL_SEPARATOR")
SingerAudioSocket = io.Custom("SINGER_AUDIO")
SingerReferenceSocket = io.Custom("SINGER_REFERENCE")
