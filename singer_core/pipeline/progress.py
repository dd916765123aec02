"""Progress reporting and cancellation hooks shared by the pipeline's stages."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from singer_core.errors import CancelledError


@dataclass(frozen=True)
class Progress:
    """One progress event: a denoising step finished (``kind='step'``), a whole clip (``'clip'``), or a resumed
    render's restored clips were handed out (``'resume'``: ``clip`` = how many, ``step`` 0)."""

    kind: str
    clip: int  # 0-based clip index
    clips: int
    step: int  # steps finished in this clip
    steps: int
    # step events: the clip's current denoised estimate (x0 prediction) [1, 4, f, h, w] in model space
    # (VAE latents x 0.18215), for previews; None for clip events. A view of the run's tensor: copy to keep.
    denoised: Any = None

    @property
    def fraction(self) -> float:
        """Overall completion in [0, 1] (decoding counts as part of its clip)."""
        done = self.clip * self.steps + (self.steps if self.kind == "clip" else self.step)
        return done / (self.clips * self.steps)


class Hooks:
    """Calls the host's progress callback and raises :class:`CancelledError` when it asks to stop."""

    def __init__(
        self,
        on_progress: Callable[[Progress], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> None:
        self.on_progress = on_progress
        self.should_cancel = should_cancel

    def check_cancel(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise CancelledError("Generation cancelled.")

    def report(self, event: Progress) -> None:
        if self.on_progress is not None:
            self.on_progress(event)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ClipClock:
    """``clip K/N`` with the time elapsed and an ETA from the clips finished in this run, for the command line
    and batch. A resumed render's restored clips cost nothing here, so they are left out of the rate (an ETA
    from the whole song's fraction would be far too short)."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self.now = now
        self.start = now()
        self.skipped = 0  # clips restored from disk
        self.done = 0  # clips finished in this run
        self.last_clip_at = self.start

    def update(self, event: Progress) -> None:
        if event.kind == "resume":
            self.skipped = event.clip
        elif event.kind == "clip":
            self.done += 1
            self.last_clip_at = self.now()

    def eta(self, event: Progress) -> float | None:
        """Seconds left: the mean time of this run's finished clips times the clips left, less the time the
        running clip has already had; None before a clip has finished."""
        if not self.done:
            return None
        left = event.clips - self.skipped - self.done
        per_clip = (self.last_clip_at - self.start) / self.done
        return max(0.0, left * per_clip - (self.now() - self.last_clip_at))

    def text(self, event: Progress) -> str:
        """``clip K/N step s/S, elapsed M:SS, ETA M:SS`` (K counts from 1); after a clip: ``clip K/N done, ...``."""
        self.update(event)
        clip = min(event.clip + (event.kind != "resume"), event.clips)
        where = f"clip {clip}/{event.clips} " + ("done" if event.kind == "clip" else f"step {event.step}/{event.steps}")
        eta = self.eta(event)
        return (f"{where}, elapsed {_clock(self.now() - self.start)}, "
                f"ETA {'after the first clip' if eta is None else _clock(eta)}")
