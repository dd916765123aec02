"""Typed training configuration: nested dataclasses read from YAML presets, a user YAML and ``--set`` overrides.

Precedence (later wins): the preset (``singer_core/train/presets/<name>.yaml``, default ``official``), the
user's ``--config`` file, then every ``--set KEY=VALUE`` (dotted keys, values parsed as YAML). Every key is
checked: an unknown key or an impossible value raises :class:`TrainConfigError` naming the key, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from singer_core.errors import InputError

PRESETS_DIR = Path(__file__).with_name("presets")
PRESETS = ("official", "improved")

# Names of trainable parameter groups (see singer_core.train.model.TRAINABLE_GROUPS for what each selects).
TRAINABLE_GROUP_NAMES = ("audioproj", "audio_modules", "motion_modules", "msm_gate", "sfm")


class TrainConfigError(InputError):
    """A training configuration key is unknown or its value is impossible."""


@dataclass
class ModelConfig:
    """What is trained and how the frozen part is held."""

    trainable: list[str] = field(default_factory=lambda: ["audioproj", "audio_modules", "motion_modules", "msm_gate"])
    frozen_dtype: str = "auto"  # auto = the mixed-precision dtype (fp32 without mixed precision)
    gradient_checkpointing: bool = True
    msm_init_seed: int = 0  # MSM/SFM are initialised from this seed when the starting net has none (Hallo)
    architecture: str = ""  # NetConfig JSON for a .pth / stage-1 start that is not full size ("" = from the file)


@dataclass
class DataConfig:
    frames: int = 14  # n_sample_frames
    motion_frames: int = 2  # n_motion_frames
    size: int = 512  # train width = height; must match the dataset
    latent_sample: bool = True  # official training: VAE latent_dist.sample() (inference uses the mean)
    num_workers: int = 2


@dataclass
class NoiseConfig:
    """Training noise schedule and target (official: DDIM-config betas, scaled_linear, zero-SNR, v-prediction)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    rescale_zero_snr: bool = True
    prediction_type: str = "v_prediction"
    offset: float = 0.05  # offset noise: + offset * randn(b, c, 1, 1, 1)
    snr_gamma: float = 5.0  # min-SNR weighting; 0 = plain MSE
    snr_weighting: str = "batch"  # batch = official (mean loss x batch-mean weight); sample = per-sample weights


@dataclass
class DropoutConfig:
    """Condition dropout probabilities, one draw per step for the whole batch (official)."""

    reference: float = 0.05  # skip the reference UNet (uncond_img_ratio)
    audio: float = 0.05  # zero the audio tokens after the MSM (uncond_audio_ratio)
    motion: float = 0.05  # zero the motion-frame pixels (start_ratio)


@dataclass
class OptimizerConfig:
    name: str = "adamw8bit"  # adamw8bit (bitsandbytes, falls back to adamw with a message) or adamw
    lr: float = 1e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.01
    eps: float = 1e-8
    max_grad_norm: float = 1.0
    lr_scheduler: str = "constant"  # any diffusers.optimization scheduler name
    warmup_steps: int = 0


@dataclass
class TrainingConfig:
    batch_size: int = 6  # per process
    max_steps: int = 30000
    gradient_accumulation: int = 1
    mixed_precision: str = "fp16"  # no | fp16 | bf16 (a CPU-only run: bf16 autocast works, fp16 falls back to no)
    seed: int = 42
    checkpoint_every: int = 500
    keep_checkpoints: int = 30  # accelerate states kept (the official keeps 30); weights files are all kept
    validation_every: int = 1000  # 0 = never
    tracker: str = "tensorboard"  # tensorboard | jsonl | none


@dataclass
class ValidationConfig:
    steps: int = 40
    guidance: float = 3.5
    clip_length: int = 14
    videos: int = 1  # the first N dataset videos (their own reference frame, audio and masks)
    seconds: float = 2.0


@dataclass
class LoraConfig:
    """peft LoRA on the linear layers of the trainable groups; rank 0 = off (full fine-tuning)."""

    rank: int = 0
    alpha: float = 0.0  # 0 = rank
    dropout: float = 0.0


@dataclass
class TrainConfig:
    preset: str = "official"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    dropout: DropoutConfig = field(default_factory=DropoutConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainingConfig = field(default_factory=TrainingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def validate(self) -> TrainConfig:
        """Raise :class:`TrainConfigError` naming the first impossible value."""
        for key, ok, why in _rules(self):
            if not ok:
                raise TrainConfigError(f"config key {key}: {why} (got {_get(self, key)!r}).")
        return self


def _rules(c: TrainConfig):
    probability = "must be a probability between 0 and 1"
    yield "preset", c.preset in PRESETS, f"must be one of {', '.join(PRESETS)}"
    unknown = [g for g in c.model.trainable if g not in TRAINABLE_GROUP_NAMES]
    yield "model.trainable", not unknown and c.model.trainable, (
        f"must be a non-empty list of {', '.join(TRAINABLE_GROUP_NAMES)}"
    )
    yield "model.frozen_dtype", c.model.frozen_dtype in ("auto", "fp32", "fp16", "bf16"), "must be auto|fp32|fp16|bf16"
    yield (
        "model.frozen_dtype",
        c.model.frozen_dtype in ("auto", "fp32", c.train.mixed_precision),
        (
            f"must be auto, fp32 or the mixed-precision format (train.mixed_precision={c.train.mixed_precision}): "
            "16-bit frozen weights compute under that format's autocast"
        ),
    )
    yield "data.frames", c.data.frames >= 2 and c.data.frames % 2 == 0, "must be an even number >= 2 (MSM wavelets)"
    yield "data.motion_frames", c.data.motion_frames >= 0, "must be >= 0"
    yield "data.size", c.data.size >= 64 and c.data.size % 64 == 0, "must be a positive multiple of 64"
    yield "data.num_workers", c.data.num_workers >= 0, "must be >= 0"
    yield "noise.num_train_timesteps", c.noise.num_train_timesteps >= 2, "must be >= 2"
    yield "noise.beta_start", 0 < c.noise.beta_start < c.noise.beta_end < 1, (
        "must satisfy 0 < beta_start < beta_end < 1"
    )
    yield "noise.beta_end", 0 < c.noise.beta_end < 1, "must be in (0, 1)"
    yield "noise.beta_schedule", c.noise.beta_schedule in ("linear", "scaled_linear"), "must be linear|scaled_linear"
    yield "noise.prediction_type", c.noise.prediction_type in ("v_prediction", "epsilon"), (
        "must be v_prediction|epsilon"
    )
    yield "noise.offset", c.noise.offset >= 0, "must be >= 0"
    yield "noise.snr_gamma", c.noise.snr_gamma >= 0, "must be >= 0 (0 = no min-SNR weighting)"
    yield "noise.snr_weighting", c.noise.snr_weighting in ("batch", "sample"), "must be batch|sample"
    for name in ("reference", "audio", "motion"):
        yield f"dropout.{name}", 0 <= getattr(c.dropout, name) <= 1, probability
    yield "optimizer.name", c.optimizer.name in ("adamw", "adamw8bit"), "must be adamw|adamw8bit"
    yield "optimizer.lr", c.optimizer.lr > 0, "must be > 0"
    yield "optimizer.betas", len(c.optimizer.betas) == 2 and all(0 <= b < 1 for b in c.optimizer.betas), (
        "must be two numbers in [0, 1)"
    )
    yield "optimizer.weight_decay", c.optimizer.weight_decay >= 0, "must be >= 0"
    yield "optimizer.eps", c.optimizer.eps > 0, "must be > 0"
    yield "optimizer.max_grad_norm", c.optimizer.max_grad_norm >= 0, "must be >= 0 (0 = no clipping)"
    yield "optimizer.warmup_steps", c.optimizer.warmup_steps >= 0, "must be >= 0"
    yield "train.batch_size", c.train.batch_size >= 1, "must be >= 1"
    yield "train.max_steps", c.train.max_steps >= 1, "must be >= 1"
    yield "train.gradient_accumulation", c.train.gradient_accumulation >= 1, "must be >= 1"
    yield "train.mixed_precision", c.train.mixed_precision in ("no", "fp16", "bf16"), "must be no|fp16|bf16"
    yield "train.checkpoint_every", c.train.checkpoint_every >= 1, "must be >= 1"
    yield "train.keep_checkpoints", c.train.keep_checkpoints >= 1, "must be >= 1"
    yield "train.validation_every", c.train.validation_every >= 0, "must be >= 0 (0 = never)"
    yield "train.tracker", c.train.tracker in ("tensorboard", "jsonl", "none"), "must be tensorboard|jsonl|none"
    yield "validation.steps", c.validation.steps >= 1, "must be >= 1"
    yield "validation.guidance", c.validation.guidance >= 1, "must be >= 1 (1 = no classifier-free guidance)"
    yield "validation.clip_length", c.validation.clip_length >= 2, "must be >= 2"
    yield "validation.videos", c.validation.videos >= 0, "must be >= 0"
    yield "validation.seconds", c.validation.seconds > 0, "must be > 0"
    yield "lora.rank", c.lora.rank >= 0, "must be >= 0 (0 = full fine-tuning)"
    yield "lora.alpha", c.lora.alpha >= 0, "must be >= 0"
    yield "lora.dropout", 0 <= c.lora.dropout < 1, "must be in [0, 1)"


def _get(config, key: str):
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


# -- building from mappings -------------------------------------------------------------------------------


def _coerce(value, annotation, key: str):
    """``value`` as the field's type (ints accepted for floats); a clear error otherwise."""
    origin = typing.get_origin(annotation)
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise TrainConfigError(f"config key {key}: expected a list, got {value!r}.")
        return [_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):  # YAML reads 1e-5 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if annotation in (int, str, bool) and type(value) is annotation:
        return value
    if annotation is str and isinstance(value, bool):  # YAML 1.1 reads an unquoted no/off/yes/on as a boolean
        return "no" if value is False else "yes"
    if annotation in (int, float, str, bool):
        raise TrainConfigError(f"config key {key}: expected {annotation.__name__}, got {value!r}.")
    return value


def _merge(target, values: dict, prefix: str = "") -> None:
    """Write a nested mapping into the dataclass ``target`` in place, checking every key."""
    if not isinstance(values, dict):
        raise TrainConfigError(f"config key {prefix.rstrip('.') or '(top level)'}: expected a mapping, got {values!r}.")
    hints = typing.get_type_hints(type(target))
    known = {f.name for f in dataclasses.fields(target)}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in known:
            raise TrainConfigError(
                f"unknown config key {key!r}; known keys here: {', '.join(sorted(known))}."
            )
        current = getattr(target, name)
        if dataclasses.is_dataclass(current):
            _merge(current, value, f"{key}.")
        else:
            setattr(target, name, _coerce(value, hints[name], key))


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise TrainConfigError(f"config file not found: {path}.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise TrainConfigError(f"config file {path} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise TrainConfigError(f"config file {path} must hold a mapping of keys, got {type(data).__name__}.")
    return data


def parse_override(text: str) -> dict:
    """``"a.b=VALUE"`` -> ``{"a": {"b": VALUE}}`` with VALUE parsed as YAML (``8``, ``true``, ``[a, b]``)."""
    if "=" not in text:
        raise TrainConfigError(f"--set expects KEY=VALUE (e.g. lora.rank=8), got {text!r}.")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise TrainConfigError(f"--set has an empty key in {text!r}.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise TrainConfigError(f"--set {key}: value {raw!r} is not valid YAML ({error}).") from error
    nested: dict = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested


def load_config(
    preset: str | None = None, config_file: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """The preset (default: the file's ``preset`` key, else ``official``), the user file, then overrides."""
    user = read_yaml(config_file) if config_file else {}
    name = preset or user.get("preset") or "official"
    if name not in PRESETS:
        raise TrainConfigError(f"config key preset: must be one of {', '.join(PRESETS)} (got {name!r}).")
    config = TrainConfig()
    _merge(config, read_yaml(PRESETS_DIR / f"{name}.yaml"))
    _merge(config, user)
    for text in overrides:
        _merge(config, parse_override(text))
    config.preset = name
    return config.validate()
