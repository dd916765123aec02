"""Evaluation of generated videos: the metrics of the SINGER paper's tables plus MS-Sync.

``evaluate(generated_dir, reference_dir=None, metrics=None, models=None, out=None)`` pairs the videos
of two folders by name, computes each metric per video (and FVD over the set), and returns an
:class:`EvaluationReport` (also written as JSON + Markdown + CSV when ``out`` is given). A metric whose
weights are missing, or that needs a reference when none was given, is skipped with the reason; the
others still run. Definitions and sources: docs/evaluation.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from singer_core.errors import InputError, SingerError

from .context import Resources, VideoContext
from .media import VideoPair, pair_videos
from .registry import METRICS, Metric, select_metrics
from .report import EvaluationReport, VideoResult

__all__ = ["METRICS", "EvaluationReport", "Metric", "VideoPair", "VideoResult", "evaluate", "pair_videos"]


def _unavailable(metric: Metric, resources: Resources, has_reference: bool) -> str | None:
    """Why ``metric`` cannot run in this setting, or None."""
    if metric.needs_reference and not has_reference:
        return "needs reference videos (pass --reference DIR / reference_dir=...)"
    weights = list(metric.weights)
    if metric.needs_faces_unless_crops and not resources.face_crops:
        from .landmarks import FACE_WEIGHTS

        weights += FACE_WEIGHTS
    for relative in weights:
        try:
            resources.weight_path(relative)
        except SingerError as error:
            return str(error)
    return None


def evaluate(
    generated_dir: str | Path,
    reference_dir: str | Path | None = None,
    metrics: list[str] | str | None = None,
    models: str | Path | None = None,
    out: str | Path | None = None,
    *,
    device: str | torch.device | None = None,
    face_crops: bool = False,
    progress: bool = True,
) -> EvaluationReport:
    """Evaluate every video of ``generated_dir`` (paired by name with ``reference_dir`` when given).

    ``metrics``: names (list or comma-separated; None = every metric that can run); ``models``: the
    models folder (ComfyUI's ``models/`` layout) holding the weight files; ``face_crops``: the videos are
    already 224x224 face crops (LSE skips face detection). Returns the report; writes it when ``out``.
    """
    from tqdm import tqdm

    pairs = pair_videos(generated_dir, reference_dir)
    resources = Resources(models=Path(models) if models else None,
                          device=torch.device(device) if device else torch.device("cpu"), face_crops=face_crops)
    explicit = metrics is not None
    skipped: dict[str, str] = {}
    active: list[Metric] = []
    for metric in select_metrics(metrics):
        reason = _unavailable(metric, resources, reference_dir is not None)
        if reason is None:
            active.append(metric)
        else:
            skipped[metric.name] = reason
            print(f"skipping {metric.name}: {reason}", file=sys.stderr)
    if explicit and not active:
        raise InputError("None of the requested metrics can run: "
                         + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    rows: list[VideoResult] = []
    collected: dict[str, list] = {m.name: [] for m in active if m.set_level}
    for pair in tqdm(pairs, desc="evaluating", unit="video", disable=not progress, file=sys.stderr):
        ctx = VideoContext(pair, resources)
        row = VideoResult(pair.name)
        for metric in active:
            try:
                if metric.set_level:
                    collected[metric.name].append(metric.collect(ctx))
                else:
                    row.values.update(metric.compute(ctx))
            except (SingerError, ValueError) as error:
                row.errors[metric.name] = str(error)
        rows.append(row)
    set_values: dict[str, float] = {}
    for metric in active:
        if metric.set_level:
            try:
                set_values.update(metric.finish(collected[metric.name], resources))
            except (SingerError, ValueError) as error:
                skipped[metric.name] = str(error)
    columns = [c for m in active if not m.set_level for c in m.columns]
    settings = {"generated_dir": str(generated_dir), "reference_dir": str(reference_dir) if reference_dir else None,
                "models": str(models) if models else None, "face_crops": face_crops}
    report = EvaluationReport(columns=columns, rows=rows, set_values=set_values, skipped=skipped, settings=settings)
    if out is not None:
        report.save(out)
    return report
