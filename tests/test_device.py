"""The official numerics and every path on an accelerator (``cuda`` marker).

Each check runs on the CPU and, marked ``cuda``, on the GPU; the GPU cases are skipped (and reported
as skipped) where no CUDA GPU is present. ``benchmarks/gpu_check.sh`` runs ``-m cuda`` on a GPU. The CPU
cases keep the checks themselves tested on every machine (same tolerances).
"""

from __future__ import annotations

import pytest
import torch

from singer_core.conformance.common import UNET_ATOL
from singer_core.models.conditions import MaskPyramid
from singer_core.sampling import ClipInputs, clip_conditions, predict_noise
from tests.conftest import assert_close, fixture_io, fixture_net

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]

# Observed on CPU (benchmarks/README.md, --fixture-deviation): fp16 4.2e-3, bf16 3.3e-2 max abs deviation of
# noise_pred from the official float32 output (|x| <= 1.4). The bounds leave room for other kernels, and
# are still far below what a wrong path gives (running the eval-mode branch moves it by 0.5).
LOW_PRECISION_BOUND = {torch.float16: 2e-2, torch.bfloat16: 1e-1}


@pytest.fixture(autouse=True)
def _exact_float32():
    """cuDNN convolutions default to TF32 on Ampere and later (about 1e-3 relative error): the fp32 parity
    checks compare true float32 arithmetic, as the official fixtures were made."""
    if not torch.cuda.is_available():
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _on(device: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in tensors.items()}


def _denoise_step(device: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(our noise_pred on ``device`` in ``dtype``, the official float32 one) for the denoise_step fixture."""
    io = _on(device, fixture_io("denoise_step"))
    net = fixture_net().to(device, dtype)

    def cast(x: torch.Tensor) -> torch.Tensor:
        return x.to(dtype) if x.is_floating_point() else x

    masks = MaskPyramid(*[[cast(io[f"input.{kind}_mask.{i}"]) for i in range(4)] for kind in ("full", "face", "lip")])
    with torch.no_grad():
        audio_tokens = net.audioproj(cast(io["input.audio_windows"]))
        clip = ClipInputs(
            ref_latents=cast(io["input.ref_image_latents"]),
            face_embedding=cast(io["input.face_emb"]),
            face_region=cast(io["input.face_region"]),
            masks=masks,
            audio_tokens=audio_tokens,
            noise=cast(io["input.latents"]),
        )
        conditions = clip_conditions(net, clip, clip.noise, io["input.motion_scale"].tolist())
        noise_pred = predict_noise(net, clip.noise, io["input.timestep"], conditions)
    assert noise_pred.device.type == torch.device(device).type
    return noise_pred.float(), io["output.noise_pred"]


@pytest.mark.parametrize("device", DEVICES)
def test_denoise_step_float32_matches_official(device: str) -> None:
    ours, official = _denoise_step(device, torch.float32)
    assert_close(ours.cpu(), official.cpu(), UNET_ATOL, f"noise_pred on {device} in float32")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_low_precision_deviation_is_bounded(device: str, dtype: torch.dtype) -> None:
    ours, official = _denoise_step(device, dtype)
    assert torch.isfinite(ours).all(), f"{dtype} produced non-finite values on {device}"
    deviation = (ours - official).abs().max().item()
    assert deviation <= LOW_PRECISION_BOUND[dtype], f"{dtype} on {device}: max abs deviation {deviation:.3e}"


@pytest.mark.parametrize("device", DEVICES)
def test_pipeline_float32_matches_official(device: str) -> None:
    """Three official DDIM steps and the VAE decode (fixture ``pipeline``) on each device."""
    from singer_core.sampling import decode_video, encode_reference
    from tests.test_sampling_parity import _clip, _options
    from tests.tiny_models.vae import tiny_vae

    io = _on(device, fixture_io("pipeline"))
    net, vae = fixture_net().to(device), tiny_vae().to(device)
    steps: list[torch.Tensor] = []
    with torch.no_grad():
        ref_latents = encode_reference(vae, io["input.ref_image"][0])
        latents = _sample(net, _clip(io, ref_latents), _options(io), steps)
        video = decode_video(vae, latents)
    assert len(steps) == 3
    for i, after in enumerate(steps):
        assert_close(after.cpu(), io[f"step{i}.latents_after"].cpu(), UNET_ATOL, f"step{i}.latents_after on {device}")
    assert_close(video.cpu(), io["output.videos"].cpu(), UNET_ATOL, f"output.videos on {device}")


def _sample(net, clip, options, steps: list):
    from singer_core.sampling import sample_clip

    return sample_clip(net, clip, options, callback=lambda i, n, x: steps.append(x))


class _DeviceGuard:
    """Forward pre-hooks on every module: each tensor argument must already be on the device."""

    def __init__(self, root: torch.nn.Module, device: str):
        self.device, self.offenders = torch.device(device).type, []
        self.handles = [m.register_forward_pre_hook(self._check) for m in root.modules()]

    def _check(self, module, args):
        for value in args:
            if isinstance(value, torch.Tensor) and value.device.type != self.device:
                self.offenders.append(f"{type(module).__name__} got a {value.device} tensor")

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


@pytest.mark.parametrize("device", DEVICES)
def test_whole_generation_runs_on_the_device(device: str, tmp_path) -> None:
    """generate() on a two-clip song: every module sees only tensors on its device, the video comes back whole."""
    from singer_core.checkpoint import load_net
    from singer_core.pipeline import DiffusersVAECodec, generate
    from tests.test_pipeline_generate import small_options, small_reference, song
    from tests.tiny_models.net import write_tiny_singer_checkpoint
    from tests.tiny_models.vae import tiny_vae

    net = load_net(write_tiny_singer_checkpoint(tmp_path / "net.safetensors")).to(device)
    vae = tiny_vae().to(device)
    guards = [_DeviceGuard(net, device), _DeviceGuard(vae, device)]
    try:
        result = generate(net, DiffusersVAECodec(vae), small_reference(fixture_io("pipeline")), song(7),
                          small_options(steps=2))
    finally:
        for guard in guards:
            guard.close()
    offenders = sorted({o for g in guards for o in g.offenders})
    assert not offenders, f"modules fed tensors from another device: {offenders[:5]}"
    assert result.frames.shape[0] == 7 and torch.isfinite(result.frames).all()


@pytest.mark.cuda
@pytest.mark.parametrize("size", [64, 128])
def test_memory_estimate_bounds_the_measured_peak(size: int, tmp_path) -> None:
    """ComfyUI is asked to free ``estimate_working_memory`` before a run (singer_core/pipeline/memory.py):
    the allocator's peak above the weights must stay under it, and the estimate must not be wildly high."""
    from singer_core.checkpoint import load_net
    from singer_core.pipeline import DiffusersVAECodec, generate
    from singer_core.pipeline.memory import WorkShape, estimate_working_memory
    from tests.test_pipeline_generate import small_options, small_reference, song
    from tests.tiny_models.net import write_tiny_singer_checkpoint
    from tests.tiny_models.vae import tiny_vae

    net = load_net(write_tiny_singer_checkpoint(tmp_path / "net.safetensors")).to("cuda")
    vae = tiny_vae().to("cuda")
    options = small_options(width=size, height=size, steps=2, clip_length=8)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    generate(net, DiffusersVAECodec(vae), small_reference(fixture_io("pipeline"), size), song(10), options)
    torch.cuda.synchronize()
    working = torch.cuda.max_memory_allocated() - before
    shape = WorkShape(size, size, options.clip_length, options.motion_frames, options.guidance > 1, torch.float32)
    estimate = estimate_working_memory(net.config, shape)
    mib = f"{size}px: measured {working / 2**20:.1f} MiB, estimate {estimate / 2**20:.1f} MiB"
    assert working <= estimate, mib
    assert estimate <= 8 * working + 64 * 2**20, mib
