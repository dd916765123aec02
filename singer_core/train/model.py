"""The net being trained: starting weights, the trainable set, gradient checkpointing, LoRA, and the
checkpoint file the pack's loaders read (``singer_core.checkpoint`` / ``convert`` format).

Starting weights (``--checkpoint NAME`` in ``MODELS/singer/``), always trained as a SINGER net:

* a SINGER ``net.pth`` / ``.safetensors``: loaded strictly;
* Hallo's ``net.pth``: everything but the MSM and SFM, which start from their initialisation
  (seeded by ``model.msm_init_seed``), as the official script builds them fresh;
* a folder of Hallo stage-1 sub-models (``reference_unet.pth``, ``denoising_unet.pth``,
  ``face_locator.pth``, ``imageproj.pth``; optionally ``motion_module.pth`` with AnimateDiff keys):
  loaded non-strictly as the official script does; the rest starts from its initialisation.

Files are read safetensors first, ``.pth`` only through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.checkpoint import checkpoint

from singer_core.checkpoint import (
    CONFIG_METADATA_KEY,
    KIND_METADATA_KEY,
    SINGER_PREFIXES,
    _read_safetensors,
    _read_torch,
    compare_keys,
    config_for_kind,
    msm_sized_like,
    read_checkpoint,
    shapes_of,
)
from singer_core.config import NetConfig
from singer_core.errors import CheckpointError, ModelFileMissingError
from singer_core.net import SingerNet

STAGE1_FILES = ("reference_unet", "denoising_unet", "face_locator", "imageproj")
STAGE1_OPTIONAL = ("motion_module",)  # AnimateDiff motion modules (official cfg.mm_path)
STAGE1_SUFFIXES = (".safetensors", ".pth")

# Trainable groups -> predicate on the Net's parameter names (official train_revised.py: audioproj.requires_grad_,
# `any(m in name for m in trainable_para)` over the denoising UNet's modules, the MSM never frozen).
TRAINABLE_GROUPS = {
    "audioproj": lambda name: name.startswith("audioproj."),
    "audio_modules": lambda name: name.startswith("denoising_unet.") and ".audio_modules." in name,
    "motion_modules": lambda name: name.startswith("denoising_unet.") and ".motion_modules." in name,
    "msm_gate": lambda name: name.startswith("audioembed.fc."),
    "sfm": lambda name: name.startswith("denoising_unet.hidden_spectral_weighting."),
}


@dataclasses.dataclass
class StartingWeights:
    """What the run starts from, and what had to be initialised because the source lacks it."""

    source: Path
    kind: str  # singer | hallo | hallo-stage1
    config: NetConfig
    initialised: list[str]  # parameter/buffer names not in the source


def _read_any(path: Path) -> dict[str, torch.Tensor]:
    return _read_safetensors(path)[0] if path.suffix == ".safetensors" else _read_torch(path)


def _stage1_file(folder: Path, name: str) -> Path | None:
    for suffix in STAGE1_SUFFIXES:
        if (folder / f"{name}{suffix}").is_file():
            return folder / f"{name}{suffix}"
    return None


def read_starting_weights(path: Path, architecture: NetConfig | None = None) -> tuple[dict, StartingWeights]:
    """The source state dict (Net key layout) and a description; errors name the file at fault."""
    path = Path(path)
    if path.is_dir():
        state: dict[str, torch.Tensor] = {}
        missing = [name for name in STAGE1_FILES if _stage1_file(path, name) is None]
        if missing:
            raise ModelFileMissingError(
                f"{path} is a folder but not a Hallo stage-1 checkpoint: missing {', '.join(missing)} "
                f"(.pth or .safetensors). Pass a SINGER/Hallo net.pth or a folder with {', '.join(STAGE1_FILES)}."
            )
        for name in STAGE1_FILES:
            state.update({f"{name}.{k}": v for k, v in _read_any(_stage1_file(path, name)).items()})
        motion = _stage1_file(path, "motion_module")
        if motion is not None:
            state.update({f"denoising_unet.{k}": v for k, v in _read_any(motion).items() if "motion_modules." in k})
        config = architecture or NetConfig.singer()
        return state, StartingWeights(path, "hallo-stage1", config, [])
    checkpoint = read_checkpoint(path, architecture)
    config = config_for_kind(checkpoint.config, "singer") if checkpoint.kind == "singer" else _as_singer(checkpoint)
    return checkpoint.state_dict, StartingWeights(path, checkpoint.kind, msm_sized_like(config, checkpoint.state_dict),
                                                  [])


def _as_singer(checkpoint) -> NetConfig:
    """A Hallo checkpoint's architecture with SINGER's MSM and SFM added (full-size MSM for the full net)."""
    config = checkpoint.config
    if config.msm is not None:
        return config
    latent = max(1, int(config.unet.get("sample_size", 64)))
    return dataclasses.replace(config, msm=[1, 14, 4, latent, latent], sfm=True)


def build_training_net(path: Path, architecture: NetConfig | None = None, init_seed: int = 0) -> tuple[SingerNet,
                                                                                                        StartingWeights]:
    """A float32 SINGER net on the CPU with the starting weights in; checks what is missing."""
    state, start = read_starting_weights(path, architecture)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        net = SingerNet(start.config)
    expected = shapes_of(net.state_dict())
    report = compare_keys(expected, shapes_of(state))
    allowed_missing = _allowed_missing(start.kind)
    bad_missing = [k for k in report.missing if not allowed_missing(k)]
    if bad_missing or report.unexpected or report.mismatched:
        report.missing = bad_missing
        raise CheckpointError(report.message(path.name, f"SINGER net (starting from a {start.kind} checkpoint)"))
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=False)
    start.initialised = report.missing
    return net.float(), start


def _allowed_missing(kind: str):
    if kind == "singer":
        return lambda key: False
    if kind == "hallo":
        return lambda key: key.startswith(SINGER_PREFIXES)
    # stage 1: the audio side and (without motion_module.pth) the motion modules start fresh, as officially
    return lambda key: key.startswith(SINGER_PREFIXES) or key.startswith("audioproj.") or any(
        part in key for part in (".audio_modules.", ".motion_modules.")
    )


def select_trainable(net: nn.Module, groups: list[str]) -> list[str]:
    """Freeze everything, then unfreeze the named groups; returns the trainable parameter names."""
    net.requires_grad_(False)
    chosen = []
    for name, param in net.named_parameters():
        if any(TRAINABLE_GROUPS[group](name) for group in groups):
            param.requires_grad_(True)
            chosen.append(name)
    if not chosen:
        raise CheckpointError(f"model.trainable {groups} selects no parameter of this net.")
    return chosen


# -- gradient checkpointing --------------------------------------------------------------------------------


# Normalisation layers whose parameters stay float32 when the frozen weights are held in 16 bits.
_FLOAT32_NORMS = (nn.GroupNorm, nn.LayerNorm)


def hold_frozen(net: nn.Module, dtype: torch.dtype) -> None:
    """Hold the frozen parameters in ``dtype`` (the trainable ones stay float32 master weights).

    Normalisation parameters stay float32: CPU kernels normalise a 16-bit input with float32 parameters but
    refuse a float32 input with 16-bit ones (which is what reaches a norm whose input came from a float32
    branch), and on a GPU autocast runs the norms in float32 anyway. They are a few kB per layer.
    """
    norms = {id(p) for m in net.modules() if isinstance(m, _FLOAT32_NORMS) for p in m.parameters(recurse=False)}
    for param in net.parameters():
        if not param.requires_grad:
            param.data = param.data.to(torch.float32 if id(param) in norms else dtype)


def _checkpointed(forward, *args, **kwargs):
    if not torch.is_grad_enabled():
        return forward(*args, **kwargs)

    def run(*inputs, **options):  # up blocks pop their skip list: give every (re)computation its own copy
        return forward(*[list(x) if isinstance(x, list) else x for x in inputs], **options)

    return checkpoint(run, *args, use_reentrant=False, **kwargs)


def enable_gradient_checkpointing(net: SingerNet) -> None:
    """Recompute each down/mid/up block of the denoising UNet in the backward pass (activations of one
    block at a time instead of all). The reference UNet runs without autograd (frozen, ``no_grad``), so it
    stores nothing to checkpoint."""
    unet = net.denoising_unet
    for block in [*unet.down_blocks, unet.mid_block, *unet.up_blocks]:
        block.forward = functools.partial(_checkpointed, block.forward)


# -- LoRA ----------------------------------------------------------------------------------------------------


class LoRADelta(nn.Module):
    """Weight parametrization ``W + (alpha / r) * B @ A`` (``B`` starts at zero: the net is unchanged at step 0).

    A parametrization rather than peft's wrapped layers: the pack's attention code reads ``linear.weight``
    directly (fused q/k/v products, 1x1 convolutions as matrix products), which would bypass a layer that
    only changes ``forward``; a parametrized ``weight`` is seen by every reader.
    """

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float, generator: torch.Generator):
        super().__init__()
        self.scale = (alpha or rank) / rank
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        bound = 1 / math.sqrt(in_features)
        with torch.no_grad():
            self.lora_A.uniform_(-bound, bound, generator=generator)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        delta = self.lora_B @ self.lora_A
        return weight + self.scale * delta.reshape(weight.shape).to(weight.dtype)


def apply_lora(net: nn.Module, trainable: list[str], rank: int, alpha: float, seed: int = 0) -> list[str]:
    """Put LoRA on every 2-D (linear / 1x1 conv) weight among ``trainable``; other trainable tensors
    (biases, norms, the MSM gate, the SFM) are frozen. Returns the LoRA parameter names."""
    generator = torch.Generator().manual_seed(seed)
    modules = dict(net.named_modules())
    targets = []
    for name in trainable:
        module_name, _, attr = name.rpartition(".")
        module = modules[module_name]
        if attr == "weight" and isinstance(module, nn.Linear | nn.Conv2d) and module.weight[0].numel() > 1:
            targets.append(module)
    net.requires_grad_(False)
    for module in targets:
        out_features, in_features = module.weight.shape[0], module.weight[0].numel()
        parametrize.register_parametrization(
            module, "weight", LoRADelta(out_features, in_features, rank, alpha, generator), unsafe=True
        )
    names = [n for n, p in net.named_parameters() if "lora_" in n]
    for n, p in net.named_parameters():
        p.requires_grad_("lora_" in n)
    return names


def merged_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """The Net ``state_dict`` in the official key layout, LoRA deltas merged into the weights."""
    state = {}
    parametrized = {}
    for name, module in net.named_modules():
        if parametrize.is_parametrized(module):
            for attr in module.parametrizations:
                parametrized[f"{name}.{attr}" if name else attr] = getattr(module, attr)
    for key, value in net.state_dict().items():
        if ".parametrizations." in key:
            continue
        state[key] = value
    for key, value in parametrized.items():
        state[key] = value.detach()
    return state


def iter_trainable(net: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    return ((n, p) for n, p in net.named_parameters() if p.requires_grad)


# -- the checkpoint file --------------------------------------------------------------------------------------

SAVE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def save_net(net: SingerNet, path: Path, dtype: torch.dtype = torch.float16) -> Path:
    """Write the full net as ``convert.py`` does: safetensors with the kind and architecture in the metadata,
    so the file works as ``MODELS/singer/<name>`` for ``generate`` and the ComfyUI loader."""
    state = {
        key: (value.to(dtype) if value.is_floating_point() else value).detach().cpu().contiguous()
        for key, value in merged_state_dict(net).items()
    }
    config = net.config
    metadata = {"format": "pt", KIND_METADATA_KEY: config.kind, CONFIG_METADATA_KEY: config.to_json()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path
