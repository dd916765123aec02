"""The evaluation report: one row per video, the mean of each column, set-level values (FVD) and the
metrics that were skipped with the reason. Written as JSON (the record), Markdown (to read) and CSV
(per video, for spreadsheets)."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class VideoResult:
    """Values of one video (``values[column]``) and the metrics that failed on it with the reason."""

    name: str
    values: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _json_number(value: float) -> float | str:
    """JSON has no inf/nan: write them as strings so the file stays standard JSON."""
    return value if math.isfinite(value) else str(value)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"


@dataclass
class EvaluationReport:
    """Result of :func:`singer_core.evaluation.evaluate`.

    ``columns`` lists the per-video value names in display order; ``means`` holds each column's mean over
    the videos where it was computed (``counts`` says over how many); ``set_values`` holds values computed
    over the whole set (FVD); ``skipped`` maps a metric to why it did not run.
    """

    columns: list[str]
    rows: list[VideoResult]
    set_values: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def means(self) -> dict[str, float]:
        means = {}
        for column in self.columns:
            values = [row.values[column] for row in self.rows if column in row.values]
            if values:
                means[column] = float(sum(values) / len(values))
        return means

    @property
    def counts(self) -> dict[str, int]:
        return {c: sum(c in row.values for row in self.rows) for c in self.columns}

    def to_dict(self) -> dict:
        return {
            "columns": self.columns,
            "means": {k: _json_number(v) for k, v in self.means.items()},
            "counts": self.counts,
            "set_values": {k: _json_number(v) for k, v in self.set_values.items()},
            "videos": [
                {"name": r.name, "values": {k: _json_number(v) for k, v in r.values.items()}, "errors": r.errors}
                for r in self.rows
            ],
            "skipped": self.skipped,
            "settings": self.settings,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        lines = ["| video | " + " | ".join(self.columns) + " |", "|---" * (len(self.columns) + 1) + "|"]
        for row in self.rows:
            lines.append(f"| {row.name} | " + " | ".join(_fmt(row.values.get(c)) for c in self.columns) + " |")
        means = self.means
        lines.append("| **mean** | " + " | ".join(_fmt(means.get(c)) for c in self.columns) + " |")
        if self.set_values:
            lines.append("")
            lines += [f"**{name}** (whole set): {_fmt(value)}  " for name, value in self.set_values.items()]
        notes = [f"- skipped {name}: {reason}" for name, reason in self.skipped.items()]
        notes += [f"- {row.name}: {name} failed: {reason}" for row in self.rows for name, reason in row.errors.items()]
        if notes:
            lines += ["", *notes]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["video", *self.columns])
        for row in self.rows:
            writer.writerow([row.name, *(repr(row.values[c]) if c in row.values else "" for c in self.columns)])
        return buffer.getvalue()

    def save(self, out: str | Path) -> list[Path]:
        """Write ``out`` (JSON) and, next to it, the same name with ``.md`` and ``.csv``."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        paths = [out, out.with_suffix(".md"), out.with_suffix(".csv")]
        for path, text in zip(paths, (self.to_json(), self.to_markdown(), self.to_csv()), strict=True):
            path.write_text(text, encoding="utf-8")
        return paths
