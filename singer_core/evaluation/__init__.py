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
from .resume import PartStore
from .resume import _stat as _file_stat

__all__ = ["METRICS", "EvaluationReport", "Metric", "VideoPair", "VideoResult", "evaluate", "pair_videos"]


def _unavailable(metric: Metric, resources: Resources, has_reference: bool) -> str | None:
    """Why ``metric`` cannot run in this setting, or None."""
    if metric.needs_reference and not has_reference:
        return "needs reference videos (pass --reference DIR / reference_dir=...)"
    weights = list(metric.weights)
    if metric.needs_faces_unless_crops and not resources.face_crops:
        from .landmarks import FACE_WEIGHTS

        weights += FACE_WEIGHTS
    missing = []
    for relative in weights:
        try:
            resources.weight_path(relative)
        except SingerError as error:
            missing.append((relative, str(error)))
    if len(missing) == 1:
        return missing[0][1]
    if missing:
        where = resources.models if resources.models is not None else Path("DIR")
        return "weights files missing: put " + ", ".join(f"'{where / rel}'" for rel, _ in missing) + \
            ("" if resources.models is not None else " (pass --models DIR)")
    return None


def _evaluate_pair(pair: VideoPair, active: list[Metric], resources: Resources):
    """One video's row and the set-level metrics' collected pieces (tuples of arrays)."""
    ctx = VideoContext(pair, resources)
    row = VideoResult(pair.name)
    pieces: dict = {}
    for metric in active:
        try:
            if metric.set_level:
                pieces[metric.name] = tuple(metric.collect(ctx))
            else:
                row.values.update(metric.compute(ctx))
        except (SingerError, ValueError) as error:
            row.errors[metric.name] = str(error)
    return row, pieces


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
    fresh: bool = False,
) -> EvaluationReport:
    """Evaluate every video of ``generated_dir`` (paired by name with ``reference_dir`` when given).

    ``metrics``: names (list or comma-separated; None = every metric that can run); ``models``: the
    models folder (ComfyUI's ``models/`` layout) holding the weight files; ``face_crops``: the videos are
    already 224x224 face crops (LSE skips face detection); ``device``: where SyncNet, I3D and the batched
    SSIM run (default: CUDA when available). Returns the report; writes it when ``out``.
    With ``out``, finished videos are kept in ``<out>.parts/`` and reused by the next run with the same
    files and metrics (resume); ``fresh=True`` recomputes everything.
    """
    from tqdm import tqdm

    pairs = pair_videos(generated_dir, reference_dir)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resources = Resources(models=Path(models) if models else None, device=torch.device(device), face_crops=face_crops,
                          progress=progress)
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
    parts = PartStore(out, fresh)
    names = [m.name for m in active]
    weights = sorted({w for m in active for w in m.weights})
    run_settings = {"face_crops": face_crops, "weights": [_file_stat(resources.models / w) for w in weights]}
    for pair in tqdm(pairs, desc="evaluating", unit="video", disable=not progress, file=sys.stderr):
        key = parts.key(pair, names, run_settings)
        stored = parts.load(pair, key)
        if stored is None:
            row, pieces = _evaluate_pair(pair, active, resources)
            parts.save(pair, key, row, pieces)
        else:
            row, pieces = stored
        rows.append(row)
        for name, piece in pieces.items():
            collected[name].append(piece)
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
