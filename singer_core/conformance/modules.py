"""Conformance cases of the small modules: Haar DWT/IDWT, MSM, SFM, audio/image projection, face locator.

Every module is rebuilt from the constructor arguments in the case JSON and fed the
stored inputs; the outputs (and the intermediates we expose) are compared at
``MODULE_ATOL``. Tensor names come from the case's ``io`` / ``tensors`` tables.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from singer_core.config import MsmConfig, SfmConfig
from singer_core.conformance.common import MODULE_ATOL, Comparison
from singer_core.models.audio_proj import AudioProjModel
from singer_core.models.face_locator import FaceLocator
from singer_core.models.image_proj import ImageProjModel
from singer_core.models.msm import MultiScaleSpectralModule
from singer_core.models.sfm import SpectralFilterModule
from singer_core.models.wavelets import SUBBANDS, HaarDWT, HaarIDWT

BANDS = SUBBANDS


def _files(case_dir: Path, name: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    io = load_file(str(case_dir / f"{name}.io.safetensors"))
    weights_path = case_dir / f"{name}.weights.safetensors"
    return io, (load_file(str(weights_path)) if weights_path.exists() else None)


def _loaded(module: torch.nn.Module, weights: dict[str, torch.Tensor] | None) -> torch.nn.Module:
    if weights is None:
        raise FileNotFoundError(f"{type(module).__name__} case: its .weights.safetensors file is missing")
    module.load_state_dict(weights, strict=True)
    return module.eval()


def run_dwt(case: dict, case_dir: Path, name: str) -> list[Comparison]:
    io, _ = _files(case_dir, name)
    results = []
    if "input.x" in io:
        bands = HaarDWT()(io["input.x"])
        for band, out in zip(BANDS, bands, strict=True):
            results.append(Comparison(f"output.{band}", out, io[f"output.{band}"], MODULE_ATOL))
    if "idwt.output" in io:
        rebuilt = HaarIDWT()(*(io[f"idwt.input.{b}"] for b in BANDS))
        results.append(Comparison("idwt.output", rebuilt, io["idwt.output"], MODULE_ATOL))
    return results


def run_msm(case: dict, case_dir: Path, name: str) -> list[Comparison]:
    io, weights = _files(case_dir, name)
    spec = case["constructor"]
    msm = MultiScaleSpectralModule(
        MsmConfig.from_official_args(spec["positional_args"], chunk=spec["chunk"], reduction=spec["reduction"])
    )
    msm = _loaded(msm, weights)
    latents = io["input.latents"]
    results = [
        Comparison("output", msm(io["input.audio_embs"], latents), io["output"], MODULE_ATOL),
        Comparison(
            "intermediate.subband_weights", msm.subband_scales(latents), io["intermediate.subband_weights"], MODULE_ATOL
        ),
    ]
    derived = io.get("derived.dct_weight_sum_over_batch_and_frames")
    if derived is not None:
        weight_sum = msm.dct_layer.weight_sum(*latents.shape[-2:])
        results.append(Comparison("derived.dct_weight_sum_over_batch_and_frames", weight_sum, derived, MODULE_ATOL))
    return results


def run_sfm(case: dict, case_dir: Path, name: str) -> list[Comparison]:
    io, weights = _files(case_dir, name)
    spec = case["constructor"]
    sfm = SpectralFilterModule(SfmConfig(spec["cross_attention_dim"], spec["attention_head_dim"], spec["chunks"]))
    sfm = _loaded(sfm, weights)
    results = []
    for sub in case["cases"]:
        x = io[f"input.{sub}"]
        results.append(Comparison(f"output.{sub}", sfm(x), io[f"output.{sub}"], MODULE_ATOL))
        gate = io.get(f"intermediate.{sub}.fc_gate")
        if gate is not None:
            per_frame = x.transpose(1, 2).reshape(-1, x.shape[1], *x.shape[3:])
            results.append(Comparison(f"intermediate.{sub}.fc_gate", sfm.width_gate(per_frame), gate, MODULE_ATOL))
    return results


def _small_module(case: dict) -> torch.nn.Module:
    kwargs = dict(case["kwargs"])
    official = case["official"]
    if "AudioProjModel" in official:
        return AudioProjModel(**kwargs)
    if "ImageProjModel" in official:
        return ImageProjModel(**kwargs)
    if "FaceLocator" in official:
        if "block_out_channels" in kwargs:
            kwargs["block_out_channels"] = tuple(kwargs["block_out_channels"])
        return FaceLocator(**kwargs)
    raise ValueError(f"unknown small-module case: {official}")


def run_small_module(case: dict, case_dir: Path, name: str) -> list[Comparison]:
    io, weights = _files(case_dir, name)
    module = _loaded(_small_module(case), weights)
    results = [Comparison(f"{name}.output", module(io["input"]), io["output"], MODULE_ATOL)]
    if "output_for_zeros_input" in io:
        zeros_out = module(torch.zeros_like(io["input"]))
        expected = io["output_for_zeros_input"]
        results.append(Comparison(f"{name}.output_for_zeros_input", zeros_out, expected, MODULE_ATOL))
    return results


def is_small_module_case(case: dict) -> bool:
    return "kwargs" in case and any(c in case.get("official", "") for c in ("AudioProj", "ImageProj", "FaceLocator"))


def run_small_modules(case: dict, case_dir: Path) -> list[Comparison]:
    """A collection like ``small_modules.json``: ``{name: case}``, files ``<name>.io/.weights.safetensors``."""
    results = []
    for name, sub in case.items():
        results += run_small_module(sub, case_dir, name)
    return results
