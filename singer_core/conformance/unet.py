"""Conformance cases of the full net: one denoising step (``denoise_step``) and the pipeline (``pipeline``).

The net is rebuilt from the case's ``net_config`` JSON and ``net_weights`` file, the VAE and
scheduler from the configs in the case, and our sampling code (``singer_core.sampling``)
is run on the stored inputs and initial noise. Sizes, frame counts, steps, guidance and
motion scales all come from the case files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler
from safetensors.torch import load_file

from singer_core.checkpoint import build_net, read_checkpoint
from singer_core.config import NetConfig
from singer_core.conformance.common import MODULE_ATOL, UNET_ATOL, Comparison
from singer_core.models.conditions import DenoiseConditions, MaskPyramid
from singer_core.sampling import (
    OFFICIAL_DDIM_CONFIG,
    ClipInputs,
    SamplingOptions,
    clip_conditions,
    decode_video,
    encode_reference,
    guide,
    predict_noise,
    sample_clip,
)

BANK_TRACE = "trace.reference_bank_fp16."
SFM_PATH = "hidden_spectral_weighting"
FP16_RELATIVE_ULP = 2.0**-10  # one float16 ulp is at most |x| * 2^-10


def load_case_net(case: dict, case_dir: Path) -> torch.nn.Module:
    """``SingerNet`` from the case's ``net_config`` (fixture net-config JSON) and ``net_weights``."""
    config = NetConfig.from_file(case_dir / case["net_config"])
    checkpoint = read_checkpoint(case_dir / case["net_weights"], config)
    return build_net(checkpoint, dtype=torch.float32)


def _masks(io: dict[str, torch.Tensor], prefix: str) -> MaskPyramid:
    def levels(region: str) -> list[torch.Tensor]:
        count = sum(1 for key in io if re.fullmatch(rf"{prefix}{region}_mask\.\d+", key))
        return [io[f"{prefix}{region}_mask.{i}"] for i in range(count)]

    return MaskPyramid(full=levels("full"), face=levels("face"), lip=levels("lip"))


def _ddim(config: dict) -> DDIMScheduler:
    return DDIMScheduler.from_config({k: v for k, v in config.items() if not k.startswith("_")})


def _condition_comparisons(cond: DenoiseConditions, io: dict, prefix: str, frames: int) -> list[Comparison]:
    """The per-clip conditions against the stored ones (keys ``step.*`` or ``internal.*``)."""
    names = {
        "encoder_hidden_states": cond.image_tokens,
        "audio_embedding": cond.audio_tokens,
        "audio_msm_out": cond.audio_tokens[1:],
        "msm_out": cond.audio_tokens[1:],
        "face_locator_out": cond.face_features.expand(-1, -1, frames, -1, -1),
    }
    results = [
        Comparison(prefix + name, tensor, io[prefix + name], MODULE_ATOL)
        for name, tensor in names.items()
        if prefix + name in io
    ]
    for i in range(len(cond.masks.full)):
        level = cond.masks.level(i, cond.image_tokens.shape[0], torch.float32)
        for region in ("full", "face", "lip"):
            key = f"{prefix}{region}_mask.{i}"
            if key in io:
                results.append(Comparison(key, getattr(level, region).squeeze(-1), io[key], 0.0))
    for key in sorted(k for k in io if k.startswith(BANK_TRACE)):
        ours = cond.bank.features[key.removeprefix(BANK_TRACE)].flatten(0, 1)
        atol = FP16_RELATIVE_ULP * io[key].float().abs().max().item()
        results.append(Comparison(key, ours, io[key], max(atol, UNET_ATOL)))
    return results


class _SpectralFilterTrace:
    """Records the SFM input (= mid-block output) and output of the last denoising-UNet call."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.seen: dict[str, torch.Tensor] = {}
        module = getattr(net.denoising_unet, SFM_PATH, None)
        self.handle = module.register_forward_hook(self._record) if module is not None else None

    def _record(self, module, args, output) -> None:
        self.seen = {"mid_block": args[0], SFM_PATH: output}

    def comparisons(self, io: dict) -> list[Comparison]:
        if self.handle is not None:
            self.handle.remove()
        results = []
        for name, tensor in self.seen.items():
            key = f"trace.denoising_unet.{name}"
            if key in io:
                results.append(Comparison(key, tensor, io[key], UNET_ATOL))
        return results


def run_denoise_step(case: dict, case_path: Path) -> list[Comparison]:
    """README section 6: conditions, reference write pass, one CFG UNet call, guidance, one DDIM step."""
    case_dir = case_path.parent
    io = load_file(str(case_dir / f"{case_path.stem}.io.safetensors"))
    net = load_case_net(case, case_dir)
    latents = io["input.latents"]
    audio_tokens = net.audioproj(io["input.audio_windows"])
    clip = ClipInputs(
        ref_latents=io["input.ref_image_latents"],
        face_embedding=io["input.face_emb"],
        face_region=io["input.face_region"],
        masks=_masks(io, "input."),
        audio_tokens=audio_tokens,
        noise=latents,
    )
    motion_scale = io["input.motion_scale"].tolist() if "input.motion_scale" in io else case["motion_scale"]
    cond = clip_conditions(net, clip, latents, motion_scale)
    trace = _SpectralFilterTrace(net)
    timestep = io["input.timestep"]
    noise_pred = predict_noise(net, latents, timestep, cond)
    guided = guide(noise_pred, case["guidance_scale"])
    scheduler = _ddim(case.get("scheduler_config", OFFICIAL_DDIM_CONFIG))  # the case names the official one
    scheduler.set_timesteps(case["scheduler_num_inference_steps_for_step"])
    prev = scheduler.step(guided, timestep, latents, eta=0.0, return_dict=False)[0]
    results = _condition_comparisons(cond, io, "step.", latents.shape[2])
    if "step.audio_proj_out" in io:
        results.append(Comparison("step.audio_proj_out", audio_tokens, io["step.audio_proj_out"], MODULE_ATOL))
    results += trace.comparisons(io)
    outputs = {"output.noise_pred": noise_pred, "output.noise_pred_guided": guided, "output.prev_latents": prev}
    results += [Comparison(key, ours, io[key], UNET_ATOL) for key, ours in outputs.items() if key in io]
    return results


def load_case_vae(case: dict, case_dir: Path) -> AutoencoderKL:
    """The VAE named in ``components.vae`` (``<name>.weights.safetensors + <name>.json``)."""
    names = re.findall(r"[\w.-]+\.(?:json|safetensors)", case["components"]["vae"])
    config_file = next(case_dir / n for n in names if n.endswith(".json"))
    weights_file = next(case_dir / n for n in names if n.endswith(".safetensors"))
    config = json.loads(config_file.read_text())["config"]
    vae = AutoencoderKL.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    vae.load_state_dict(load_file(str(weights_file)), strict=True)
    return vae.eval()


class _StepRecorder:
    """Collects each step's UNet input/output (forward hook) and the latents after the step (callback)."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.unet_inputs: list[torch.Tensor] = []
        self.noise_preds: list[torch.Tensor] = []
        self.latents: list[torch.Tensor] = []
        self.handle = net.denoising_unet.register_forward_hook(self._record_unet)

    def _record_unet(self, module, args, output) -> None:
        self.unet_inputs.append(args[0])
        self.noise_preds.append(output)

    def __call__(self, done: int, total: int, latents: torch.Tensor) -> None:
        self.latents.append(latents)

    def comparisons(self, io: dict, timesteps: torch.Tensor) -> list[Comparison]:
        self.handle.remove()
        results = []
        recorded = {
            "latent_model_input": self.unet_inputs,
            "noise_pred": self.noise_preds,
            "latents_after": self.latents,
        }
        for i, t in enumerate(timesteps):
            if f"step{i}.t" in io:
                results.append(Comparison(f"step{i}.t", t.reshape(()).float(), io[f"step{i}.t"].float(), 0.0))
            for name, values in recorded.items():
                key = f"step{i}.{name}"
                if key in io and i < len(values):
                    results.append(Comparison(key, values[i], io[key], UNET_ATOL))
        return results


def _seeded_noise(case: dict, shape: torch.Size) -> torch.Tensor | None:
    """``torch.randn(shape, generator=torch.manual_seed(N))`` when the case documents its seed."""
    match = re.search(r"manual_seed\((\d+)\)", str(case["call"].get("generator", "")))
    if match is None:
        return None
    return torch.randn(shape, generator=torch.Generator().manual_seed(int(match.group(1))))


def run_pipeline(case: dict, case_path: Path) -> list[Comparison]:
    """README section 7: VAE-encode the reference, sample all steps from the stored noise, decode."""
    case_dir = case_path.parent
    io = load_file(str(case_dir / f"{case_path.stem}.io.safetensors"))
    net = load_case_net(case, case_dir)
    vae = load_case_vae(case, case_dir)
    call = case["call"]
    scheduler = _ddim(case["components"]["scheduler"]["config"])
    results = []

    ref_latents = encode_reference(vae, io["input.ref_image"][0])
    key = "internal.ref_image_latents_scaled"
    if key in io:
        results.append(Comparison(key, ref_latents, io[key], UNET_ATOL))
    if "input.audio_windows" in io:
        projected = net.audioproj(io["input.audio_windows"])
        results.append(Comparison("input.audio_tensor", projected, io["input.audio_tensor"], MODULE_ATOL))
    init = io["draw.init_latents"]
    seeded = _seeded_noise(case, init.shape)
    if seeded is not None:
        results.append(Comparison("draw.init_latents", seeded * scheduler.init_noise_sigma, init, 0.0))

    clip = ClipInputs(
        ref_latents=ref_latents,
        face_embedding=io["input.face_emb"],
        face_region=io["input.face_region"],
        masks=_masks(io, "input."),
        audio_tokens=io["input.audio_tensor"],
        noise=init / scheduler.init_noise_sigma,
    )
    options = SamplingOptions(
        steps=call["num_inference_steps"],
        guidance_scale=call["guidance_scale"],
        motion_scale=tuple(call["motion_scale"]),
        eta=call.get("eta", 0.0),
    )
    frames = init.shape[2]
    results += _condition_comparisons(clip_conditions(net, clip, init, options.motion_scale), io, "internal.", frames)
    recorder = _StepRecorder(net)
    latents = sample_clip(net, clip, options, scheduler=scheduler, callback=recorder)
    results += recorder.comparisons(io, scheduler.timesteps)
    schedule = {"scheduler.timesteps": scheduler.timesteps, "scheduler.alphas_cumprod": scheduler.alphas_cumprod}
    for key, ours in schedule.items():
        if key in io:
            results.append(Comparison(key, ours.float(), io[key].float(), MODULE_ATOL))
    results.append(Comparison("output.videos", decode_video(vae, latents), io["output.videos"], UNET_ATOL))
    return results
