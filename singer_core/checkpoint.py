"""Reading SINGER / Hallo ``Net`` checkpoints and building the net from them.

Accepted files:

* the official ``net.pth`` of SINGER or Hallo (a plain ``state_dict`` with the prefixes
  ``reference_unet.``, ``denoising_unet.``, ``face_locator.``, ``imageproj.``,
  ``audioproj.`` and, for SINGER only, ``audioembed.``), read with
  ``torch.load(weights_only=True)``; a dict wrapping it under ``state_dict``/``module``
  or keys carrying a ``module.`` prefix are unwrapped;
* our ``.safetensors`` (written by ``python -m singer_core.convert``), whose metadata
  carries the architecture (``singer_net_config``); without it the full-size
  architecture of the detected kind is assumed.

The kind is detected from the keys: SINGER has the MSM (``audioembed.*``) and SFM
(``denoising_unet.hidden_spectral_weighting.*``) keys, Hallo has neither. Any other file
(a Stable Diffusion checkpoint, a VAE, wav2vec, ...) is rejected with a message saying
what it looks like and which file is expected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from singer_core.config import NetConfig
from singer_core.errors import CheckpointError, ModelFileMissingError

CONFIG_METADATA_KEY = "singer_net_config"
KIND_METADATA_KEY = "singer_kind"

SINGER_PREFIXES = ("audioembed.", "denoising_unet.hidden_spectral_weighting.")
EXPECTED_FILE = (
    "Select the SINGER net.pth released by the authors (or a .safetensors converted from it with "
    "`python -m singer_core.convert`), or Hallo's net.pth."
)
SHOWN_KEYS = 5
MSM_BUFFER_KEY = "audioembed.dct_layer.weight"

# (what it looks like, a key prefix or key that identifies it); checked in this order.
_FOREIGN_SIGNATURES = (
    ("a full Stable Diffusion checkpoint (UNet + VAE + text encoder)", "model.diffusion_model."),
    ("a Stable Diffusion VAE (original layout)", "first_stage_model."),
    ("a UNet on its own (Stable Diffusion's, or a separate reference/denoising UNet file)", "down_blocks.0.resnets."),
    ("an AnimateDiff / Hallo motion-module checkpoint", "down_blocks.0.motion_modules."),
    ("a VAE (diffusers AutoencoderKL)", "decoder.conv_in.weight"),
    ("a VAE (original layout)", "decoder.up.0.block.0.conv1.weight"),
    ("a wav2vec 2.0 audio model", "feature_extractor.conv_layers.0.conv.weight"),
    ("a wav2vec 2.0 audio model", "wav2vec2.feature_extractor."),
    ("a CLIP image encoder", "vision_model."),
    ("a CLIP text encoder", "text_model."),
)


@dataclass
class Checkpoint:
    """A Net ``state_dict`` read from disk, with its detected kind and architecture."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    kind: str  # "singer" or "hallo"
    config: NetConfig


# --- key analysis (pure functions on key sets) ------------------------------------------------------


def detect_kind(keys: Iterable[str], source: str = "checkpoint") -> str:
    """``'singer'`` or ``'hallo'`` from the key names; :class:`CheckpointError` for anything else."""
    keys = set(keys)
    if any(key.startswith(SINGER_PREFIXES) for key in keys):
        return "singer"
    prefixes = {key.split(".", 1)[0] + "." for key in keys}
    if {"reference_unet.", "denoising_unet."} <= prefixes:
        return "hallo"
    raise CheckpointError(f"{source} is not a SINGER or Hallo net checkpoint: {describe_foreign(keys)} {EXPECTED_FILE}")


def describe_foreign(keys: Iterable[str]) -> str:
    """One sentence saying what a non-Net checkpoint looks like, from its keys."""
    keys = set(keys)
    if not keys:
        return "it contains no tensors."
    for description, marker in _FOREIGN_SIGNATURES:
        if marker in keys or any(key.startswith(marker) for key in keys):
            return f"it looks like {description}."
    return f"its {len(keys)} tensors have unrecognised names (e.g. {', '.join(sorted(keys)[:3])})."


@dataclass
class KeyReport:
    """Differences between the keys/shapes a net expects and those a checkpoint holds."""

    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # key, expected, found

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def message(self, source: str, architecture: str) -> str:
        parts = [f"{source} does not match the {architecture} architecture:"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing keys (e.g. {_first(self.missing)});")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected keys (e.g. {_first(self.unexpected)});")
        if self.mismatched:
            shown = ", ".join(f"{k} {list(e)} vs {list(f)} in the file" for k, e, f in self.mismatched[:SHOWN_KEYS])
            parts.append(f"{len(self.mismatched)} keys with other shapes (e.g. {shown});")
        parts.append(
            "The file may be damaged or from another model size; a converted .safetensors keeps its architecture "
            "in its metadata, a .pth needs the matching config (convert with --config ARCH.json)."
        )
        return " ".join(parts)


def compare_keys(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]) -> KeyReport:
    """Compare ``{key: shape}`` tables (what the architecture wants vs what the file has), in their key order."""
    mismatched = [(k, tuple(expected[k]), tuple(found[k])) for k in expected if k in found]
    return KeyReport(
        missing=[key for key in expected if key not in found],
        unexpected=[key for key in found if key not in expected],
        mismatched=[item for item in mismatched if item[1] != item[2]],
    )


def _first(keys: list[str]) -> str:
    return ", ".join(keys[:SHOWN_KEYS]) + (", ..." if len(keys) > SHOWN_KEYS else "")


def shapes_of(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(tensor.shape) for key, tensor in state_dict.items()}


# --- reading files ----------------------------------------------------------------------------------


def read_checkpoint(path: str | Path, config: NetConfig | None = None) -> Checkpoint:
    """Read a Net checkpoint; ``config`` overrides the architecture stored in / implied by the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileMissingError(f"Net checkpoint not found: {path}. {EXPECTED_FILE}")
    if path.suffix == ".safetensors":
        state_dict, metadata = _read_safetensors(path)
    else:
        state_dict, metadata = _read_torch(path), {}
    kind = detect_kind(state_dict, source=path.name)
    config = config_for_kind(config or _config_from_metadata(metadata, kind, path.name), kind)
    return Checkpoint(path=path, state_dict=state_dict, kind=kind, config=msm_sized_like(config, state_dict))


def config_for_kind(config: NetConfig, kind: str) -> NetConfig:
    """The same architecture without MSM/SFM for a Hallo checkpoint (a SINGER config may be given)."""
    if kind == "hallo" and config.kind == "singer":
        return dataclasses.replace(config, msm=None, sfm=False)
    return config


def msm_sized_like(config: NetConfig, state_dict: Mapping[str, torch.Tensor]) -> NetConfig:
    """Take the MSM buffer's batch and frame sizes from the checkpoint.

    Only the buffer's sum over those two axes matters (README section 2), and they follow
    the training setup (quirk 6 of docs/official_quirks.md: ``train_bs`` x ``n_sample_frames`` builds [6, 4, 14, 64, 64]
    where inference builds [1, 4, 14, 64, 64]), so any such buffer is accepted.
    """
    buffer = state_dict.get(MSM_BUFFER_KEY)
    if config.msm is None or buffer is None or buffer.dim() != 5:
        return config
    batchsize, channel, nframes, height, width = buffer.shape  # buffer layout: [batchsize, channel, nframes, H, W]
    if (channel, height, width) != (config.msm.channel, config.msm.dct_h, config.msm.dct_w):
        return config  # a real mismatch: reported by the key/shape check
    return dataclasses.replace(config, msm=dataclasses.replace(config.msm, batchsize=batchsize, nframes=nframes))


def _config_from_metadata(metadata: Mapping[str, str], kind: str, source: str) -> NetConfig:
    text = metadata.get(CONFIG_METADATA_KEY)
    if text is None:
        return NetConfig.singer() if kind == "singer" else NetConfig.hallo()
    try:
        return NetConfig.from_json(text)
    except (ValueError, TypeError) as error:
        raise CheckpointError(
            f"{source}: the architecture stored in its metadata cannot be read ({error}). Convert it again."
        ) from error


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            return {key: handle.get_tensor(key) for key in handle.keys()}, metadata
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path.name} is not a readable .safetensors file ({error}). {EXPECTED_FILE}") from error


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = _torch_load(path)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path.name} cannot be read as a PyTorch weights file ({type(error).__name__}: {str(error)[:200]}). "
            f"Only plain tensor checkpoints are loaded (weights_only). {EXPECTED_FILE}"
        ) from error
    return unwrap_state_dict(loaded, path.name)


def _torch_load(path: Path) -> object:
    """``weights_only`` load, memory-mapped when the file format allows it (zip format)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def unwrap_state_dict(loaded: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded object: itself, ``['state_dict']``/``['module']``, ``module.``-prefixed."""
    for wrapper in ("state_dict", "module"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
            break
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{source} holds a {type(loaded).__name__}, not a dict of tensors. {EXPECTED_FILE}")
    tensors = {key: value for key, value in loaded.items() if isinstance(value, torch.Tensor)}
    if tensors and all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module.") :]: value for key, value in tensors.items()}
    return tensors


# --- building the net -------------------------------------------------------------------------------


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Create module parameters on the meta device (no init cost); buffers stay real.

    Parameters are then filled by ``load_state_dict(assign=True)``; buffers, including
    non-persistent ones absent from the checkpoint (e.g. the Haar filters), keep their
    constructed values.
    """
    original = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def empty_net(config: NetConfig) -> nn.Module:
    """``SingerNet(config)`` with its parameters on the meta device (fast, no memory), see above."""
    from singer_core.net import SingerNet

    with parameters_on_meta():
        return SingerNet(config)


def verify_keys(checkpoint: Checkpoint, net: nn.Module) -> None:
    """Raise :class:`CheckpointError` unless the checkpoint has exactly the net's keys and shapes."""
    report = compare_keys(shapes_of(net.state_dict()), shapes_of(checkpoint.state_dict))
    if not report.ok:
        architecture = "SINGER net" if checkpoint.kind == "singer" else "Hallo net"
        raise CheckpointError(report.message(checkpoint.path.name, architecture))


def build_net(checkpoint: Checkpoint, dtype: torch.dtype | None = None, device: str | torch.device = "cpu"):
    """Construct ``SingerNet(checkpoint.config)`` and load the weights with strict key/shape checks.

    ``dtype`` defaults to the dtype of the stored floating-point weights.
    """
    net = empty_net(checkpoint.config)
    verify_keys(checkpoint, net)
    net.load_state_dict(checkpoint.state_dict, strict=True, assign=True)
    net.requires_grad_(False)
    return net.to(device=device, dtype=dtype or stored_float_dtype(checkpoint.state_dict))


def stored_float_dtype(state_dict: Mapping[str, torch.Tensor]) -> torch.dtype:
    """The dtype most floating-point tensors of the checkpoint have (float32 if none)."""
    counts: dict[torch.dtype, int] = {}
    for tensor in state_dict.values():
        if tensor.is_floating_point():
            counts[tensor.dtype] = counts.get(tensor.dtype, 0) + tensor.numel()
    return max(counts, key=counts.get) if counts else torch.float32


def load_net(
    path: str | Path,
    config: NetConfig | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
):
    """Read a SINGER/Hallo checkpoint and return the loaded ``SingerNet`` (``net.config`` if H1 sets it)."""
    return build_net(read_checkpoint(path, config), dtype=dtype, device=device)
