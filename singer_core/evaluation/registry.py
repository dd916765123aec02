"""The metrics the evaluator knows: name, value columns, what each needs (a reference, weight files)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from singer_core.errors import InputError

from . import multiscale
from .context import VideoContext
from .fvd import I3D_FILE
from .landmarks import FACE_WEIGHTS
from .syncnet import SYNCNET_FILE


@dataclass(frozen=True)
class Metric:
    """One metric. ``compute(ctx)`` returns ``{column: value}`` for one video.

    ``weights`` are paths relative to the models folder (``--models``); when one is missing the metric
    is skipped with a message naming it. ``needs_reference``: skipped without ``--reference``.
    """

    name: str
    columns: tuple[str, ...]
    compute: Callable[[VideoContext], dict[str, float]] | None
    needs_reference: bool = False
    weights: tuple[str, ...] = ()
    description: str = ""
    # Needs the face models too, except in --face-crops mode (LSE).
    needs_faces_unless_crops: bool = False
    # Set-level metrics (FVD): ``collect(ctx)`` per video (a tuple of numpy arrays, kept for resuming),
    # then ``finish(collected, resources)`` once.
    collect: Callable[[VideoContext], Any] | None = None
    finish: Callable[[list, Any], dict[str, float]] | None = None

    @property
    def set_level(self) -> bool:
        return self.finish is not None


def _fidelity(name: str):
    """PSNR or SSIM of one video against its reference (each computed only when asked for)."""

    def compute(ctx: VideoContext) -> dict[str, float]:
        from .fidelity import psnr_ssim

        values = psnr_ssim(ctx.frames(name), ctx.reference_frames(), ctx.resources.device, metrics=(name,))
        return {name: values[name]}

    return compute


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    METRICS[metric.name] = metric
    return metric


register(Metric("psnr", ("psnr",), _fidelity("psnr"), needs_reference=True,
                description="PSNR (dB) against the reference, per frame, averaged"))
register(Metric("ssim", ("ssim",), _fidelity("ssim"), needs_reference=True,
                description="SSIM against the reference, per frame, averaged"))


def _cpbd(ctx: VideoContext) -> dict[str, float]:
    from .sharpness import video_cpbd

    return {"cpbd": video_cpbd(ctx.frames("cpbd"))}


register(Metric("cpbd", ("cpbd",), _cpbd, description="CPBD sharpness of the generated frames, averaged"))


def _bas(ctx: VideoContext) -> dict[str, float]:
    from .motion import head_bas

    audio, rate = ctx.audio()
    return {"bas": head_bas(ctx.landmarks(), audio, rate, ctx.fps)}


def _lmd(ctx: VideoContext) -> dict[str, float]:
    from .media import frame_size
    from .motion import lmd

    gen_w = frame_size(ctx.pair.generated)[0]
    ref_w = frame_size(ctx.pair.reference)[0]
    return {"lmd": lmd(ctx.landmarks(), ctx.reference_landmarks(), scale=gen_w / ref_w)}


def _diversity(ctx: VideoContext) -> dict[str, float]:
    from .motion import diversity

    return {"diversity": diversity(ctx.landmarks())}


register(Metric("lmd", ("lmd",), _lmd, needs_reference=True, weights=FACE_WEIGHTS,
                description="mouth landmark distance to the reference (pixels)"))
register(Metric("diversity", ("diversity",), _diversity, weights=FACE_WEIGHTS,
                description="std of the landmarks over time (pixels)"))
register(Metric("bas", ("bas",), _bas, weights=FACE_WEIGHTS,
                description="beat align score of head/landmark motion and music beats (Bailando)"))


def _lse(ctx: VideoContext) -> dict[str, float]:
    from .syncnet import load_syncnet, video_sync_scores

    res = ctx.resources
    net = res.get("syncnet", lambda: load_syncnet(res.weight_path(SYNCNET_FILE), res.device))
    faces = None if res.face_crops else res.face_models()
    scores = video_sync_scores(net, ctx.pair.generated, faces)
    return {"lse_d": scores.lse_d, "lse_c": scores.lse_c}


register(Metric("lse", ("lse_d", "lse_c"), _lse, weights=(SYNCNET_FILE,),
                needs_faces_unless_crops=True,
                description="SyncNet lip-sync distance (LSE-D, lower is better) and confidence (LSE-C)"))


def _ms_sync(ctx: VideoContext) -> dict[str, float]:
    from .multiscale import ms_sync

    audio, rate = ctx.audio()
    return ms_sync(ctx.landmarks(), audio, rate, ctx.fps)


register(Metric("ms_sync", tuple(multiscale.columns()), _ms_sync, weights=FACE_WEIGHTS,
                description="multi-scale correlation of the song's loudness with mouth opening and head speed"))


def _fvd_collect(ctx: VideoContext):
    from .fvd import i3d_features, load_i3d

    res = ctx.resources
    detector = res.get("i3d", lambda: load_i3d(res.weight_path(I3D_FILE), res.device))
    return (i3d_features(detector, ctx.frames("fvd"), res.device),
            i3d_features(detector, ctx.reference_frames("fvd reference"), res.device))


def _fvd_finish(collected: list, resources) -> dict[str, float]:
    from .fvd import fvd

    if not collected:
        raise ValueError("no video could be read for FVD")
    generated = np.concatenate([g for g, _ in collected])
    reference = np.concatenate([r for _, r in collected])
    return {"fvd": fvd(generated, reference), "fvd_clips": float(len(generated))}


register(Metric("fvd", ("fvd",), None, needs_reference=True, weights=(I3D_FILE,),
                collect=_fvd_collect, finish=_fvd_finish,
                description="Frechet video distance to the reference set (I3D, StyleGAN-V protocol)"))

# Names a user may type for a metric that reports several columns.
ALIASES = {"lse_d": "lse", "lse_c": "lse", "lse-d": "lse", "lse-c": "lse", "ms-sync": "ms_sync"}


def select_metrics(names: list[str] | str | None) -> list[Metric]:
    """The metrics named (comma-separated string or list; None = all), in registry order."""
    if names is None:
        return list(METRICS.values())
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    wanted = {ALIASES.get(n.strip().lower(), n.strip().lower()) for n in names}
    unknown = sorted(wanted - set(METRICS))
    if unknown:
        raise InputError(f"Unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}.")
    return [m for m in METRICS.values() if m.name in wanted]
