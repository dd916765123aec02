"""A whole preparation run: inputs -> dataset folder, resumable, in parallel worker processes, with a
progress bar and a summary table.

Resuming: a video whose folder already holds ``record.json`` (accepted) or ``rejected.json`` (turned away)
for a source file of the same size is skipped, so re-running the same command is a no-op that rewrites an
identical ``dataset.json``. Rejections with reason ``error`` (an unexpected failure, e.g. out of memory) are
retried. ``dataset.json`` is rebuilt from every video folder at the end, so runs over different inputs into
the same dataset add up. A dataset prepared with other settings is refused (the files would not match).

Workers: ``workers > 1`` uses a process pool (spawn start method: CUDA, onnxruntime and torch threads do
not survive ``fork``); each worker loads the models once. A video that fails is recorded and the run goes on;
a worker that dies takes only its own video with it.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from singer_core.errors import InputError

from . import format as fmt
from .prepare import Outcome, PrepareSettings, prepare_video, reject_error, video_id
from .quality import RejectReason

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")

_WORKER: dict = {}


@dataclass
class RunSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    index: fmt.DatasetIndex | None = None

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


def collect_videos(inputs: list[str | Path]) -> list[Path]:
    """Files as given (any extension) and, for folders, every video file below them; sorted, unique."""
    found: dict[Path, None] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in VIDEO_SUFFIXES:
                    found[child.resolve()] = None
        elif path.is_file():
            found[path.resolve()] = None
        else:
            raise InputError(f"Input not found: {path}. Pass video files or folders of videos.")
    return sorted(found)


def _finished(path: Path, out_root: Path) -> Outcome | None:
    """The earlier result for ``path`` when it can be reused, else None."""
    ident = video_id(path)
    directory = out_root / fmt.VIDEOS_DIR / ident
    size_bytes = path.stat().st_size
    record_file, rejected_file = directory / fmt.RECORD_FILE, directory / fmt.REJECTED_FILE
    if record_file.is_file():
        record = fmt.VideoRecord.from_dict(fmt.read_json(record_file))
        if record.source_bytes == size_bytes:
            return Outcome(ident, str(path), "skipped-accepted", frames=record.frames)
    elif rejected_file.is_file():
        rejection = fmt.Rejection.from_dict(fmt.read_json(rejected_file))
        if rejection.source_bytes == size_bytes and RejectReason.ERROR.value not in rejection.reasons:
            return Outcome(ident, str(path), "skipped-rejected", rejection.reasons, rejection.message)
    return None


def check_settings(out_root: Path, settings: dict) -> None:
    """Refuse to mix settings (or models) in one dataset."""
    index_file = out_root / fmt.INDEX_FILE
    if not index_file.is_file():
        return
    old = fmt.DatasetIndex.from_dict(fmt.read_json(index_file), str(index_file)).settings
    new = settings
    changed = sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
    if changed:
        details = ", ".join(f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in changed)
        raise InputError(f"{out_root} was prepared with other settings ({details}). Use the same options to "
                         "resume it, or another --out for a new dataset.")


def build_index(out_root: Path, size: int, settings: dict) -> fmt.DatasetIndex:
    """Index of every finished video folder, sorted by source path (independent of the completion order)."""
    videos, rejected = [], []
    folder = out_root / fmt.VIDEOS_DIR
    for directory in sorted(folder.iterdir()) if folder.is_dir() else []:
        if (directory / fmt.RECORD_FILE).is_file():
            videos.append(fmt.VideoRecord.from_dict(fmt.read_json(directory / fmt.RECORD_FILE)))
        elif (directory / fmt.REJECTED_FILE).is_file():
            rejected.append(fmt.Rejection.from_dict(fmt.read_json(directory / fmt.REJECTED_FILE)))
    videos.sort(key=lambda r: (r.source, r.id))
    rejected.sort(key=lambda r: (r.source, r.id))
    return fmt.DatasetIndex(size=size, settings=settings, videos=videos, rejected=rejected)


def _worker_init(models_root: str, settings: PrepareSettings, device: str | None, threads: int) -> None:
    import torch

    from .models import PrepareModels

    torch.set_num_threads(threads)
    _WORKER["models"] = PrepareModels.load(models_root, settings.vocal_separation, device)
    _WORKER["settings"] = settings


def _worker_run(path: str, out_root: str) -> Outcome:
    try:
        return prepare_video(Path(path), Path(out_root), _WORKER["models"], _WORKER["settings"])
    except Exception as error:  # noqa: BLE001 - any failure of one video is recorded, the run goes on
        return reject_error(Path(path), Path(out_root), error)


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def prepare_dataset(inputs: list[str | Path], out: str | Path, models_root: str | Path,
                    settings: PrepareSettings | None = None, workers: int = 1, device: str | None = None,
                    progress: bool = True) -> RunSummary:
    """Prepare every input video into ``out``; returns the outcomes and the final index."""
    from tqdm import tqdm

    from .models import locate_prepare_models

    settings = settings or PrepareSettings()
    if workers < 1:
        raise InputError(f"--workers must be at least 1 (got {workers}).")
    out_root = Path(out)
    videos = collect_videos(inputs)
    if not videos:
        raise InputError(f"No video files found in {', '.join(str(i) for i in inputs)} "
                         f"(looked for {', '.join(VIDEO_SUFFIXES)}).")
    files = locate_prepare_models(models_root)
    recorded = {**settings.to_dict(), "models": files.describe(settings.vocal_separation)}
    check_settings(out_root, recorded)
    out_root.mkdir(parents=True, exist_ok=True)
    fmt.write_index(out_root, build_index(out_root, settings.size, recorded))
    summary = RunSummary()
    todo = []
    for path in videos:
        earlier = _finished(path, out_root)
        summary.outcomes.append(earlier) if earlier else todo.append(path)
    with tqdm(total=len(videos), initial=len(videos) - len(todo), desc="preparing", unit="video",
              disable=not progress, file=sys.stderr) as bar:
        for outcome in _run(todo, out_root, str(models_root), settings, workers, device):
            summary.outcomes.append(outcome)
            bar.update(1)
            bar.set_postfix(accepted=summary.count("accepted"), rejected=summary.count("rejected"))
    summary.outcomes.sort(key=lambda o: o.source)
    summary.index = build_index(out_root, settings.size, recorded)
    fmt.write_index(out_root, summary.index)
    return summary


def _run(todo: list[Path], out_root: Path, models_root: str, settings: PrepareSettings, workers: int,
         device: str | None):
    if not todo:
        return
    workers = min(workers, len(todo))
    if workers == 1:
        import torch

        caller_threads = torch.get_num_threads()  # in-process: the caller's thread count is given back after
        _worker_init(models_root, settings, device, threads_per_worker(1))
        try:
            for path in todo:
                yield _worker_run(str(path), str(out_root))
        finally:
            _WORKER.clear()
            torch.set_num_threads(caller_threads)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                             initargs=(models_root, settings, device, threads_per_worker(workers))) as pool:
        futures = {pool.submit(_worker_run, str(path), str(out_root)): path for path in todo}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as error:  # noqa: BLE001 - a dead worker (BrokenProcessPool) or a failed load
                yield reject_error(futures[future], out_root, error)


def summary_table(summary: RunSummary, out: str | Path) -> str:
    """Plain-text table of every input plus totals per status and per rejection reason."""
    rows = [("status", "video", "frames", "reason")]
    for o in summary.outcomes:
        rows.append((o.status, Path(o.source).name, str(o.frames) if o.frames else "-",
                     ", ".join(o.reasons) if o.reasons else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    index = summary.index
    total_frames = sum(v.frames for v in index.videos) if index else 0
    reasons = Counter(reason for r in (index.rejected if index else []) for reason in r.reasons)
    lines.append("")
    lines.append(f"dataset {out}: {len(index.videos) if index else 0} videos accepted ({total_frames} frames, "
                 f"{total_frames / fmt.FPS:.1f} s), {len(index.rejected) if index else 0} rejected; this run: "
                 f"{summary.count('accepted')} accepted, {summary.count('rejected')} rejected, "
                 f"{summary.count('skipped-accepted') + summary.count('skipped-rejected')} already done")
    if reasons:
        lines.append("rejected by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    return "\n".join(lines)
