"""Per-video results kept next to the report, so an interrupted or extended evaluation resumes.

With ``out=R.json`` each finished video is stored in ``R.parts/<video>.json`` (values and errors) and, for
set-level metrics (FVD), ``R.parts/<video>.npz`` (the collected arrays). A stored video is reused only when
the same metrics ran on the same files (size and modification time of the generated and reference video)
in the same mode; otherwise it is computed again and overwritten.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from .media import VideoPair
from .report import VideoResult, _json_number


def _stat(path: Path | None) -> list:
    if path is None:
        return []
    info = path.stat()
    return [str(path.resolve()), info.st_size, info.st_mtime_ns]


class PartStore:
    """Load/save one video's results; a no-op when there is no report path or ``fresh`` is asked."""

    def __init__(self, out: str | Path | None, fresh: bool = False):
        self.folder = None if out is None else Path(out).with_suffix(".parts")
        self.fresh = fresh

    def key(self, pair: VideoPair, metrics: list[str], settings: dict) -> str:
        text = json.dumps([metrics, _stat(pair.generated), _stat(pair.reference), settings], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def load(self, pair: VideoPair, key: str) -> tuple[VideoResult, dict[str, tuple]] | None:
        if self.folder is None or self.fresh:
            return None
        path = self.folder / f"{pair.name}.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if data.get("key") != key:
            return None
        row = VideoResult(pair.name, {k: float(v) for k, v in data["values"].items()}, data["errors"])
        collected: dict[str, tuple] = {}
        if data["collected"]:
            with np.load(self.folder / f"{pair.name}.npz") as arrays:
                for metric, count in data["collected"].items():
                    collected[metric] = tuple(arrays[f"{metric}__{i}"] for i in range(count))
        return row, collected

    def save(self, pair: VideoPair, key: str, row: VideoResult, collected: dict[str, Any]) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if collected:
            arrays = {f"{m}__{i}": np.asarray(a) for m, parts in collected.items() for i, a in enumerate(parts)}
            np.savez(self.folder / f"{pair.name}.npz", **arrays)
        data = {"key": key, "values": {k: _json_number(v) for k, v in row.values.items()}, "errors": row.errors,
                "collected": {m: len(parts) for m, parts in collected.items()}}
        temporary = self.folder / f"{pair.name}.json.tmp"
        temporary.write_text(json.dumps(data))
        temporary.replace(self.folder / f"{pair.name}.json")  # the JSON last: it marks the video done
