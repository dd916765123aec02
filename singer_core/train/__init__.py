"""Fine-tuning SINGER on prepared singing videos (``python -m singer_core.train``, docs/training.md)."""

from singer_core.train.config import TrainConfig, TrainConfigError, load_config

__all__ = ["TrainConfig", "TrainConfigError", "load_config"]
