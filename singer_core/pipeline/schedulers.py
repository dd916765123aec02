"""Noise schedulers: the official DDIM configuration and faster solvers on the same noise schedule."""

from __future__ import annotations

from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

from singer_core.errors import InputError

# `noise_scheduler_kwargs` of the official inference config plus the `enable_zero_snr` overrides
# (quirk 11: beta_schedule stays 'linear').
OFFICIAL_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "steps_offset": 1,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
}


def make_scheduler(name: str = "ddim"):
    """A fresh scheduler (schedulers keep per-run state, so build one per clip).

    ``ddim`` is the official sampler (eta 0); ``dpmpp`` is second-order DPM-Solver++ and ``euler``
    the Euler ODE solver, both on the same betas, zero-SNR rescale, spacing and v-prediction.
    """
    if name == "ddim":
        return DDIMScheduler(**OFFICIAL_SCHEDULE, clip_sample=False, set_alpha_to_one=True)
    if name == "dpmpp":
        return DPMSolverMultistepScheduler(
            **OFFICIAL_SCHEDULE, algorithm_type="dpmsolver++", solver_order=2, final_sigmas_type="zero"
        )
    if name == "euler":
        return EulerDiscreteScheduler(**OFFICIAL_SCHEDULE, final_sigmas_type="zero")
    raise InputError(f"scheduler must be one of ddim, dpmpp, euler (got {name!r}).")
