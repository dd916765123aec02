"""Experiment trackers for Accelerate: TensorBoard when installed, and always a JSON-lines file.

``RUN/logs/metrics.jsonl`` (one ``{"step": N, ...}`` line per logged step) needs nothing installed and is what
the tests and scripts read; TensorBoard (``tensorboard --logdir RUN/logs``) is the default viewer.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from accelerate.tracking import GeneralTracker

METRICS_FILE = "metrics.jsonl"


class JsonLinesTracker(GeneralTracker):
    """Appends every ``log`` call to ``logging_dir/metrics.jsonl`` (main process only)."""

    name = "jsonl"
    requires_logging_directory = True

    def __init__(self, run_name: str = "singer-train", logging_dir: str | Path = "."):
        super().__init__()
        self.path = Path(logging_dir) / METRICS_FILE

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def tracker(self):
        return self.path

    def store_init_configuration(self, values: dict) -> None:
        self._write({"config": values})

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        self._write({"step": step, **{k: (float(v) if hasattr(v, "item") else v) for k, v in values.items()}})

    def _write(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")


def trackers_for(name: str, logging_dir: Path) -> tuple[list, str | None]:
    """``log_with`` for ``Accelerator`` and a note when TensorBoard was asked for but is missing."""
    trackers: list = [JsonLinesTracker(logging_dir=logging_dir)]
    if name == "none":
        return [], None
    if name == "tensorboard":
        if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
            return trackers, "tensorboard is not installed: logging to RUN/logs/metrics.jsonl only"
        trackers.append("tensorboard")
    return trackers, None
