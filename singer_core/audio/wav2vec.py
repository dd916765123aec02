"""The wav2vec2 audio encoder: loading (HF folder or single .safetensors) and the pieces SINGER runs.

SINGER (like Hallo) runs transformers' ``Wav2Vec2Model`` with the ``facebook/wav2vec2-base-960h`` weights, but
not through its ``forward``: the 50 Hz conv features are interpolated to the 25 fps video frame count before
the feature projection and the transformer (see ``features.py``). This module builds and loads the model and
exposes the two halves: the conv feature encoder (optionally chunked for long songs, exactly) and the
transformer encoder returning every layer's output.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import Wav2Vec2Config, Wav2Vec2Model

from singer_core.errors import CheckpointError, ModelFileMissingError

WAV2VEC_FOLDER_HINT = (
    "Put facebook/wav2vec2-base-960h (config.json + model.safetensors) in ComfyUI/models/wav2vec2/ "
    "(command line: --models DIR puts it in DIR/wav2vec2/)."
)

# Architecture of facebook/wav2vec2-base-960h. Used when a single .safetensors file comes without a config:
# the sizes are then read from the tensors, the rest (strides, activations, eps) are the base model's.
BASE_960H_ARCHITECTURE: dict = {
    "model_type": "wav2vec2",
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "num_feat_extract_layers": 7,
    "conv_dim": [512] * 7,
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": False,
    "feat_extract_norm": "group",
    "feat_extract_activation": "gelu",
    "do_stable_layer_norm": False,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "layer_norm_eps": 1e-5,
    "vocab_size": 32,
}
_HEAD_DIM = 64  # every released wav2vec2 uses 64-dim attention heads; head count is not stored in the tensors
_HEAD_PREFIXES = ("lm_head.",)  # Wav2Vec2ForCTC's CTC head: not used for features
V_NAME = "encoder.pos_conv_embed.conv.weight_v"
_WEIGHT_NORM = {  # hub / old torch names  <->  torch.nn.utils.parametrizations names
    "encoder.pos_conv_embed.conv.weight_g": "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    "encoder.pos_conv_embed.conv.weight_v": "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
}


def build_wav2vec(config: Wav2Vec2Config) -> Wav2Vec2Model:
    """Randomly initialised model of ``config`` in eval mode, attention through ``scaled_dot_product_attention``
    (which never materialises the frames x frames attention matrix on its fused kernels)."""
    if config.feat_extract_norm != "group" or config.do_stable_layer_norm:
        raise CheckpointError(
            "Only wav2vec2 models with the base architecture (group-norm feature encoder, post-norm transformer, "
            "like facebook/wav2vec2-base-960h) are supported; this config uses "
            f"feat_extract_norm={config.feat_extract_norm!r}, do_stable_layer_norm={config.do_stable_layer_norm}."
        )
    config = Wav2Vec2Config.from_dict(config.to_dict())
    # transformers < 4.40 has no SDPA path for wav2vec2 (and refuses the setting): eager there
    config._attn_implementation = "sdpa" if getattr(Wav2Vec2Model, "_supports_sdpa", False) else "eager"
    model = Wav2Vec2Model(config)
    model.eval().requires_grad_(False)
    return model


def normalize_state_dict(state_dict: dict[str, torch.Tensor], target_keys: set[str]) -> dict[str, torch.Tensor]:
    """Rename checkpoint keys to the model's names: strip ``wav2vec2.``, drop ``lm_head``, map weight norm."""
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        key = key.removeprefix("wav2vec2.")
        if key.startswith(_HEAD_PREFIXES):
            continue
        for old_name, parametrized in _WEIGHT_NORM.items():
            if key == old_name and parametrized in target_keys:
                key = parametrized
            elif key == parametrized and old_name in target_keys:
                key = old_name
        renamed[key] = tensor
    return renamed


def config_from_state_dict(state_dict: dict[str, torch.Tensor]) -> Wav2Vec2Config:
    """Base-960h architecture with the sizes read from the tensors (hidden, layers, conv widths, pos-conv)."""
    sd = normalize_state_dict(state_dict, set())
    try:
        conv = [sd[f"feature_extractor.conv_layers.{i}.conv.weight"] for i in range(_count(sd, "feature_extractor"))]
        hidden = sd["feature_projection.projection.weight"].shape[0]
        pos_v = sd.get(V_NAME, sd.get(_WEIGHT_NORM[V_NAME]))
        intermediate = sd["encoder.layers.0.feed_forward.intermediate_dense.weight"].shape[0]
    except (KeyError, AttributeError) as error:
        raise CheckpointError(
            f"This file is not a wav2vec2 checkpoint (missing {error}). {WAV2VEC_FOLDER_HINT}"
        ) from error
    if pos_v is None or len(conv) != len(BASE_960H_ARCHITECTURE["conv_stride"]):
        raise CheckpointError(f"This file is not a wav2vec2-base style checkpoint. {WAV2VEC_FOLDER_HINT}")
    arch = dict(BASE_960H_ARCHITECTURE)
    arch.update(
        hidden_size=hidden,
        num_hidden_layers=_count(sd, "encoder"),
        num_attention_heads=max(1, hidden // _HEAD_DIM),
        intermediate_size=intermediate,
        conv_dim=[w.shape[0] for w in conv],
        conv_kernel=[w.shape[2] for w in conv],
        conv_bias="feature_extractor.conv_layers.0.conv.bias" in sd,
        num_conv_pos_embeddings=pos_v.shape[2],
        num_conv_pos_embedding_groups=hidden // pos_v.shape[1],
        mask_time_prob=0.05 if "masked_spec_embed" in sd else 0.0,
    )
    return Wav2Vec2Config(**arch)


def _count(sd: dict[str, torch.Tensor], part: str) -> int:
    pattern = re.compile(rf"^{part}\.(?:conv_)?layers\.(\d+)\.")
    indices = {int(m.group(1)) for key in sd if (m := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def load_state_into(model: Wav2Vec2Model, state_dict: dict[str, torch.Tensor], source: str) -> Wav2Vec2Model:
    """Strict load after renaming; ``masked_spec_embed`` (training-only SpecAugment vector) may be absent."""
    target = model.state_dict()
    sd = normalize_state_dict(state_dict, set(target))
    if "masked_spec_embed" not in target:
        sd.pop("masked_spec_embed", None)
    missing = sorted(set(target) - set(sd) - {"masked_spec_embed"})
    unexpected = sorted(set(sd) - set(target))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match the wav2vec2 architecture: missing {missing[:5]}, unexpected {unexpected[:5]}. "
            f"{WAV2VEC_FOLDER_HINT}"
        )
    wrong = [k for k in sd if sd[k].shape != target[k].shape]
    if wrong:
        raise CheckpointError(f"{source}: tensor shapes differ from the config for {wrong[:5]}.")
    model.load_state_dict(sd, strict=False)
    return model


def load_wav2vec(path: str | Path, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
    """Load wav2vec2 from a Hugging Face folder or a single ``.safetensors`` file -> eval-mode ``Wav2Vec2Model``."""
    path = Path(path)
    if path.is_dir():
        config, state_dict, source = _read_folder(path)
    elif path.is_file():
        config, state_dict, source = _read_single_file(path)
    else:
        raise ModelFileMissingError(f"wav2vec2 model not found at {path}. {WAV2VEC_FOLDER_HINT}")
    model = load_state_into(build_wav2vec(config), state_dict, source)
    return model.to(device=device, dtype=dtype)


def _read_folder(folder: Path) -> tuple[Wav2Vec2Config, dict[str, torch.Tensor], str]:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelFileMissingError(f"wav2vec2 config missing: {config_file}. {WAV2VEC_FOLDER_HINT}")
    config = Wav2Vec2Config.from_dict(json.loads(config_file.read_text()))
    for name in ("model.safetensors", "pytorch_model.bin"):
        weights = folder / name
        if weights.is_file():
            if name.endswith(".safetensors"):
                return config, load_file(str(weights)), str(weights)
            return config, torch.load(weights, map_location="cpu", weights_only=True), str(weights)
    raise ModelFileMissingError(
        f"wav2vec2 weights missing: neither model.safetensors nor pytorch_model.bin in {folder}. {WAV2VEC_FOLDER_HINT}"
    )


def _read_single_file(file: Path) -> tuple[Wav2Vec2Config, dict[str, torch.Tensor], str]:
    if file.suffix != ".safetensors":
        raise CheckpointError(
            f"{file}: a single-file wav2vec2 model must be a .safetensors file. {WAV2VEC_FOLDER_HINT}"
        )
    with safe_open(str(file), framework="pt") as handle:
        metadata = handle.metadata() or {}
    state_dict = load_file(str(file))
    if "config" in metadata:
        return Wav2Vec2Config.from_dict(json.loads(metadata["config"])), state_dict, str(file)
    return config_from_state_dict(state_dict), state_dict, str(file)


# ---- the two halves of the model as SINGER runs them ----------------------------------------------------------


def conv_frame_count(config: Wav2Vec2Config, num_samples: int) -> int:
    """Number of 50 Hz conv feature frames for ``num_samples`` input samples."""
    length = num_samples
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        length = (length - kernel) // stride + 1
    return max(length, 0)


def _receptive_field(config: Wav2Vec2Config) -> tuple[int, int]:
    """(samples seen by one output frame, samples between output frames) of the conv stack."""
    field, hop = 1, 1
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        field += (kernel - 1) * hop
        hop *= stride
    return field, hop


class SampleSource:
    """The conv encoder's input ``[1, samples]``, read a piece at a time: a tensor, or any object with a
    ``length`` and ``read(start, stop) -> [1, stop - start]`` (see ``features.NormalizedSong``)."""

    def __init__(self, values: torch.Tensor) -> None:
        self.values, self.length = values, values.shape[-1]

    def read(self, start: int, stop: int) -> torch.Tensor:
        return self.values[:, start:stop]


@torch.no_grad()
def conv_features(model: Wav2Vec2Model, input_values, chunk_frames: int | None = None,
                  piece_frames: int | None = None) -> torch.Tensor:  # fmt: skip
    """Conv feature encoder ``[B, samples] -> [B, C, frames]`` (50 Hz).

    With ``chunk_frames`` the output is computed in pieces of that many frames. The first layer's GroupNorm
    normalises each channel over the whole song, so its statistics are gathered in a first pass; the remaining
    layers are plain strided convolutions, so each piece only needs its own receptive field. The result equals
    the one-shot computation up to float rounding, with memory bounded by the piece size: ``piece_frames``
    (default ``chunk_frames``) once the input is longer than ``chunk_frames``. ``input_values`` may
    be an object like ``SampleSource`` that makes each piece on demand, so a long input never exists whole.
    """
    source = input_values if hasattr(input_values, "read") else SampleSource(input_values)
    total = conv_frame_count(model.config, source.length)
    if chunk_frames is None or total <= chunk_frames:
        return model.feature_extractor(source.read(0, source.length))
    piece = piece_frames or chunk_frames
    first, rest = model.feature_extractor.conv_layers[0], model.feature_extractor.conv_layers[1:]
    field, hop = _receptive_field(model.config)
    mean, inv_std = _first_layer_stats(first, source, piece * hop // first.conv.stride[0])
    scale = (first.layer_norm.weight * inv_std)[None, :, None]
    shift = (first.layer_norm.bias - mean * first.layer_norm.weight * inv_std)[None, :, None]
    features = None  # written piece by piece: no small pieces kept between the large transient buffers
    for start in range(0, total, piece):
        stop = min(start + piece, total)
        hidden = first.conv(source.read(start * hop, (stop - 1) * hop + field)[:, None])
        hidden = first.activation(hidden * scale + shift)
        for layer in rest:
            hidden = layer(hidden)
        if features is None:
            features = hidden.new_empty(*hidden.shape[:2], total)
        features[..., start:stop] = hidden
    return features


def _first_layer_stats(first, source: SampleSource, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and 1/sqrt(var + eps) per channel of the first conv's output over the whole input, ``step`` frames
    at a time (float64 sums, the biased variance GroupNorm uses)."""
    conv = first.conv
    kernel, stride = conv.kernel_size[0], conv.stride[0]
    frames = (source.length - kernel) // stride + 1
    # sums updated in place: no small tensor is kept between the pieces' large transient buffers (fragmentation)
    total = torch.zeros(1, conv.out_channels, dtype=torch.float64, device=conv.weight.device)
    total_sq = torch.zeros_like(total)
    for start in range(0, frames, step):
        stop = min(start + step, frames)
        piece = source.read(start * stride, (stop - 1) * stride + kernel)
        if piece.shape[0] != 1:
            raise CheckpointError("Chunked conv features support one song at a time (batch size 1).")
        out = conv(piece[:, None]).double()
        total += out.sum(-1)
        total_sq += (out * out).sum(-1)
    mean = total / frames
    var = (total_sq / frames - mean * mean).clamp_min(0.0)
    inv_std = torch.rsqrt(var + first.layer_norm.eps)
    return mean[0].to(piece.dtype), inv_std[0].to(piece.dtype)


@torch.no_grad()
def encoder_hidden_states(model: Wav2Vec2Model, hidden: torch.Tensor) -> list[torch.Tensor]:
    """Transformer encoder on projected features ``[B, T, D]``; returns each layer's output (``hidden_states[1:]``)."""
    encoder = model.encoder
    hidden = encoder.layer_norm(hidden + encoder.pos_conv_embed(hidden))
    outputs = []
    for layer in encoder.layers:
        result = layer(hidden)
        hidden = result[0] if isinstance(result, tuple) else result
        outputs.append(hidden)
    return outputs
