"""Noise schedulers: the official DDIM configuration and faster solvers on the same noise schedule."""

from __future__ import annotations

from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler

from singer_core.errors import InputError
from singer_core.sampling import OFFICIAL_DDIM_CONFIG, official_scheduler

# The official noise schedule (quirk 11) without DDIM's own settings, for the other solvers.
OFFICIAL_SCHEDULE = {k: v for k, v in OFFICIAL_DDIM_CONFIG.items() if k not in ("clip_sample", "set_alpha_to_one")}


def make_scheduler(name: str = "ddim"):
    """A fresh scheduler (schedulers keep per-run state, so build one per clip).

    ``ddim`` is the official sampler (eta 0); ``dpmpp`` is second-order DPM-Solver++ and ``euler``
    the Euler ODE solver, both on the same betas, zero-SNR rescale, spacing and v-prediction.
    """
    if name == "ddim":
        return official_scheduler()
    if name == "dpmpp":
        return DPMSolverMultistepScheduler(
            **OFFICIAL_SCHEDULE, algorithm_type="dpmsolver++", solver_order=2, final_sigmas_type="zero"
        )
    if name == "euler":
        return EulerDiscreteScheduler(**OFFICIAL_SCHEDULE, final_sigmas_type="zero")
    raise InputError(f"scheduler must be one of ddim, dpmpp, euler (got {name!r}).")
