"""Training configuration, starting weights and LoRA: presets, clear errors for bad input, Hallo / stage-1
starts, LoRA merged into the saved weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from singer_core.checkpoint import load_net
from singer_core.train.__main__ import main
from singer_core.train.config import TrainConfigError, load_config
from singer_core.train.model import apply_lora, build_training_net, merged_state_dict, save_net, select_trainable
from tests.tiny_models.net import NET_CONFIG_FILE, tiny_net_state_dict, write_tiny_singer_checkpoint
from tests.tiny_models.train_data import write_tiny_dataset
from tests.tiny_models.vae import write_diffusers_folder


def test_official_preset_is_the_official_recipe():
    c = load_config()
    assert c.preset == "official"
    assert c.model.trainable == ["audioproj", "audio_modules", "motion_modules", "msm_gate"]
    assert c.model.gradient_checkpointing
    assert (c.data.frames, c.data.motion_frames, c.data.size) == (14, 2, 512)
    assert (c.noise.beta_start, c.noise.beta_end, c.noise.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert c.noise.rescale_zero_snr and c.noise.prediction_type == "v_prediction"
    assert (c.noise.offset, c.noise.snr_gamma, c.noise.snr_weighting) == (0.05, 5.0, "batch")
    assert (c.dropout.reference, c.dropout.audio, c.dropout.motion) == (0.05, 0.05, 0.05)
    o = c.optimizer
    assert (o.name, o.lr, o.betas, o.weight_decay, o.eps, o.max_grad_norm, o.lr_scheduler) == (
        "adamw8bit", 1e-5, [0.9, 0.999], 0.01, 1e-8, 1.0, "constant")
    assert (c.train.batch_size, c.train.mixed_precision, c.train.checkpoint_every, c.train.validation_every) == (
        6, "fp16", 500, 1000)
    assert (c.validation.steps, c.validation.guidance) == (40, 3.5)


def test_improved_preset_and_overrides():
    c = load_config("improved", None, ["lora.rank=8", "train.batch_size=2", "optimizer.betas=[0.8, 0.99]"])
    assert "sfm" in c.model.trainable and c.noise.snr_weighting == "sample" and c.noise.beta_schedule == "linear"
    assert (c.lora.rank, c.train.batch_size, c.optimizer.betas) == (8, 2, [0.8, 0.99])


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("lora.rnk=8", "unknown config key 'lora.rnk'"),
        ("trainer.steps=3", "unknown config key 'trainer'"),
        ("train.batch_size=0", "train.batch_size: must be >= 1"),
        ("dropout.audio=1.5", "dropout.audio: must be a probability"),
        ("data.frames=7", "data.frames: must be an even number"),
        ("model.trainable=[audioproj, vae]", "model.trainable"),
        ("train.max_steps=many", "train.max_steps: expected int"),
        ("noise.beta_schedule=cosine", "noise.beta_schedule"),
        ("lora.rank", "--set expects KEY=VALUE"),
    ],
)
def test_bad_keys_and_values_are_named(override, named):
    with pytest.raises(TrainConfigError, match=named.replace("[", r"\[").replace("(", r"\(")):
        load_config(None, None, [override])


def test_config_file_errors_name_the_key_and_the_file(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("preset: official\noptimizer:\n  lr: 1.0e-4\n  momentum: 0.9\n")
    argv = ["--data", str(tmp_path), "--models", str(tmp_path), "--checkpoint", "x", "--out", str(tmp_path / "r"),
            "--config", str(config)]  # fmt: skip
    assert main(argv) == 2
    assert "unknown config key 'optimizer.momentum'" in capsys.readouterr().err
    config.write_text("optimizer: [1, 2]\n")
    assert main(argv) == 2
    assert "config key optimizer: expected a mapping" in capsys.readouterr().err
    config.write_text("optimizer: {lr: [\n")
    assert main(argv) == 2
    assert f"config file {config} is not valid YAML" in capsys.readouterr().err


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_inputs")
    write_tiny_dataset(root / "data", frames=8, size=64)
    write_tiny_singer_checkpoint(root / "models" / "singer" / "net.safetensors")
    write_diffusers_folder(root / "models" / "vae" / "tiny")
    return root


def test_missing_or_mismatched_inputs_are_named(folders, tmp_path, capsys):
    def run(data, checkpoint="net.safetensors", *extra):
        argv = ["--data", str(data), "--models", str(folders / "models"), "--checkpoint", checkpoint, "--out",
                str(tmp_path / "run"), *extra]  # fmt: skip
        assert main(argv) == 2
        return capsys.readouterr().err

    assert f"Dataset folder not found: {tmp_path / 'nothing'}" in run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    assert "No dataset.json in" in run(tmp_path / "empty")
    assert "prepared at 64x64 but data.size (--size) is 512" in run(folders / "data")
    assert "starting checkpoint 'other.pth' not found" in run(folders / "data", "other.pth", "--size", "64")
    error = run(folders / "data", "net.safetensors", "--size", "64", "--set", "model.architecture=/no/arch.json")
    assert "model.architecture: file not found" in error
    assert not (tmp_path / "run").exists()


def test_hallo_and_stage1_starts_initialise_only_what_they_lack(tmp_path):
    hallo = write_tiny_singer_checkpoint(tmp_path / "hallo.safetensors", kind="hallo")
    net, start = build_training_net(hallo)
    assert start.kind == "hallo" and net.is_singer
    assert start.initialised and all(k.startswith(("audioembed.", "denoising_unet.hidden_spectral")) for k in
                                     start.initialised)  # fmt: skip
    state = tiny_net_state_dict("hallo")
    stage1 = tmp_path / "stage1"
    stage1.mkdir()
    for name in ("reference_unet", "denoising_unet", "face_locator", "imageproj"):
        part = {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")}
        if name == "denoising_unet":  # stage 1 has no audio or motion modules
            part = {k: v for k, v in part.items() if ".audio_modules." not in k and ".motion_modules." not in k}
        if name == "face_locator":
            torch.save(part, stage1 / f"{name}.pth")  # .pth read with weights_only=True
        else:
            save_file(part, str(stage1 / f"{name}.safetensors"))
    from singer_core.config import NetConfig

    net, start = build_training_net(stage1, NetConfig.from_file(NET_CONFIG_FILE))
    assert start.kind == "hallo-stage1"
    assert any(".motion_modules." in k for k in start.initialised) and any(k.startswith("audioproj.") for k in
                                                                            start.initialised)  # fmt: skip
    assert not any(k.startswith(("reference_unet.", "face_locator.", "imageproj.")) for k in start.initialised)
    (stage1 / "imageproj.safetensors").unlink()
    with pytest.raises(Exception, match="missing imageproj"):
        build_training_net(stage1, NetConfig.from_file(NET_CONFIG_FILE))


def test_lora_trains_only_adapters_and_is_merged_on_save(tmp_path):
    net, _ = build_training_net(write_tiny_singer_checkpoint(tmp_path / "net.safetensors"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trainable = select_trainable(net, ["audioproj", "audio_modules", "motion_modules"])
    lora = apply_lora(net, trainable, rank=4, alpha=8.0, seed=0)
    assert lora and all("lora_" in n for n, p in net.named_parameters() if p.requires_grad)
    merged = merged_state_dict(net)
    assert merged.keys() == before.keys()
    assert all(torch.equal(merged[k], before[k]) for k in before)  # B = 0: the net is unchanged at the start
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith("lora_B"):
                param.normal_(std=0.01)
    merged = merged_state_dict(net)
    key = "audioproj.proj1.weight"
    assert not torch.equal(merged[key], before[key])
    torch.testing.assert_close(merged[key], net.audioproj.proj1.weight.detach())
    path = save_net(net, tmp_path / "lora.safetensors", torch.float32)
    loaded = load_net(path)  # the pack's own loader: strict keys, architecture from the metadata
    torch.testing.assert_close(loaded.audioproj.proj1.weight, merged[key])


def test_frozen_weights_in_16_bits_need_the_same_mixed_precision():
    with pytest.raises(TrainConfigError, match=r"model.frozen_dtype: must be auto, fp32 or the mixed-precision format"):
        load_config(None, None, ["train.mixed_precision=bf16", "model.frozen_dtype=fp16"])
    with pytest.raises(TrainConfigError, match=r"train.mixed_precision=no"):
        load_config(None, None, ["train.mixed_precision=no", "model.frozen_dtype=bf16"])
    config = load_config(None, None, ["train.mixed_precision=bf16", "model.frozen_dtype=bf16"])
    assert config.model.frozen_dtype == "bf16"


def test_shipped_accelerate_configs_load_and_match_the_official_recipe():
    """The configs `accelerate launch --config_file` takes, read by Accelerate's own loader (DeepSpeed itself
    needs GPUs: its fp16 engine's way of running the net is tested in test_train_step.py)."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    folder = Path(__file__).resolve().parents[1] / "singer_core" / "train" / "accelerate"
    official = load_config("official")
    zero2 = load_config_from_file(str(folder / "deepspeed_zero2.yaml"))
    assert zero2.distributed_type == DistributedType.DEEPSPEED and zero2.deepspeed_config["zero_stage"] == 2
    assert zero2.deepspeed_config["gradient_clipping"] == official.optimizer.max_grad_norm
    assert zero2.deepspeed_config["gradient_accumulation_steps"] == official.train.gradient_accumulation
    assert zero2.mixed_precision == official.train.mixed_precision == "fp16" and zero2.num_processes == 4
    multi = load_config_from_file(str(folder / "multi_gpu.yaml"))
    assert multi.distributed_type == DistributedType.MULTI_GPU and multi.mixed_precision == "fp16"
