"""Progress reporting and cancellation hooks shared by the pipeline's stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from singer_core.errors import CancelledError


@dataclass(frozen=True)
class Progress:
    """One progress event: a denoising step finished (``kind='step'``) or a whole clip (``'clip'``)."""

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
