"""SINGER: audio-driven singing portrait video (host-independent core library)."""
