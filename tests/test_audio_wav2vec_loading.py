"""wav2vec2 loading: HF folder / single file, hub key layout, weight-norm names both ways, missing files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from singer_core.audio.wav2vec import (
    BASE_960H_ARCHITECTURE,
    build_wav2vec,
    config_from_state_dict,
    load_state_into,
    load_wav2vec,
    normalize_state_dict,
)
from singer_core.errors import CheckpointError, ModelFileMissingError
from tests.tiny_models.wav2vec import (
    tiny_wav2vec_config,
    tiny_wav2vec_state_dict,
    write_tiny_wav2vec_file,
    write_tiny_wav2vec_folder,
)

G = "encoder.pos_conv_embed.conv.weight_g"
V = "encoder.pos_conv_embed.conv.weight_v"
P0 = "encoder.pos_conv_embed.conv.parametrizations.weight.original0"
P1 = "encoder.pos_conv_embed.conv.parametrizations.weight.original1"


def _assert_same_weights(model, expected: dict[str, torch.Tensor]) -> None:
    actual = model.state_dict()
    for key, tensor in expected.items():
        if key == "masked_spec_embed":
            continue
        assert torch.equal(actual[key], tensor), key


def _output(model) -> torch.Tensor:
    torch.manual_seed(3)
    return model.feature_extractor(torch.randn(1, 4000))


@pytest.mark.parametrize("weights_name", ["model.safetensors", "pytorch_model.bin"])
def test_hf_folder_in_hub_ctc_layout(tmp_path, weights_name):
    folder = write_tiny_wav2vec_folder(tmp_path / "wav2vec2-base-960h", seed=5, weights_name=weights_name)
    model = load_wav2vec(folder)
    _assert_same_weights(model, tiny_wav2vec_state_dict(seed=5))
    assert not model.training
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 4


def test_single_file_with_config_metadata(tmp_path):
    model = load_wav2vec(write_tiny_wav2vec_file(tmp_path / "w.safetensors", seed=2))
    _assert_same_weights(model, tiny_wav2vec_state_dict(seed=2))
    assert model.config.num_attention_heads == 2


def test_single_file_without_config_infers_the_architecture(tmp_path):
    path = write_tiny_wav2vec_file(tmp_path / "w.safetensors", seed=2, with_config=False)
    config = config_from_state_dict(load_file(str(path)))
    tiny = tiny_wav2vec_config()
    for field in ("hidden_size", "num_hidden_layers", "intermediate_size", "conv_dim", "conv_kernel", "conv_stride",
                  "conv_bias", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups", "feat_extract_norm"):
        assert getattr(config, field) == getattr(tiny, field), field
    # the head count is not stored in the tensors: 64-dim heads like every released wav2vec2 -> 1 head here
    assert config.num_attention_heads == 1
    model = load_wav2vec(path)
    _assert_same_weights(model, tiny_wav2vec_state_dict(seed=2))


def test_hub_single_file_with_prefix_and_old_weight_norm_names(tmp_path):
    folder = write_tiny_wav2vec_folder(tmp_path / "hub", seed=4)
    hub = load_file(str(folder / "model.safetensors"))
    assert G in {k.removeprefix("wav2vec2.") for k in hub} and "lm_head.weight" in hub
    single = tmp_path / "wav2vec2-base-960h.safetensors"
    save_file(hub, str(single))
    model = load_wav2vec(single)
    reference = load_state_into(build_wav2vec(tiny_wav2vec_config()), tiny_wav2vec_state_dict(seed=4), "ref")
    assert torch.equal(_output(model), _output(reference))
    _assert_same_weights(model, tiny_wav2vec_state_dict(seed=4))


def test_weight_norm_names_map_both_ways():
    g, v = torch.ones(1, 1, 4), torch.ones(8, 2, 4)
    to_parametrized = normalize_state_dict({"wav2vec2." + G: g, "wav2vec2." + V: v}, {P0, P1})
    assert set(to_parametrized) == {P0, P1}
    to_old = normalize_state_dict({P0: g, P1: v, "lm_head.weight": g}, {G, V})
    assert set(to_old) == {G, V}


def test_base_960h_config_is_the_default_architecture():
    assert BASE_960H_ARCHITECTURE["hidden_size"] == 768 and BASE_960H_ARCHITECTURE["num_hidden_layers"] == 12
    assert BASE_960H_ARCHITECTURE["conv_stride"] == [5, 2, 2, 2, 2, 2, 2]


def test_missing_model_names_the_file_and_the_folder(tmp_path):
    with pytest.raises(ModelFileMissingError, match="models/wav2vec2"):
        load_wav2vec(tmp_path / "nothing_here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileMissingError, match="config.json"):
        load_wav2vec(tmp_path / "empty")
    folder = write_tiny_wav2vec_folder(tmp_path / "noweights")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelFileMissingError, match="model.safetensors"):
        load_wav2vec(folder)


def test_wrong_checkpoint_is_a_checkpoint_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    save_file({"something.weight": torch.zeros(3)}, str(bad))
    with pytest.raises(CheckpointError, match="not a wav2vec2"):
        load_wav2vec(bad)
    sd = tiny_wav2vec_state_dict()
    sd.pop("encoder.layers.0.attention.k_proj.weight")
    with pytest.raises(CheckpointError, match="k_proj"):
        load_state_into(build_wav2vec(tiny_wav2vec_config()), sd, "broken")
