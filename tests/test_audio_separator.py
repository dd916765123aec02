"""MDX vocal separation with tiny ONNX stand-ins of Kim_Vocal_2's signature, on the real example song."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss
import torch

from singer_core.audio.separator import MdxParams, MdxSeparator, separate_vocals
from singer_core.audio.waveform import prepare_waveform, read_audio_file, resample
from singer_core.errors import CheckpointError, InputError, ModelFileMissingError
from tests.conftest import DATA
from tests.tiny_models.separator import lowpass_mask, write_tiny_mdx_onnx


@pytest.fixture(scope="module")
def song():
    return read_audio_file(DATA / "0001.wav")


def _highpass(x: np.ndarray, hz: float = 60.0) -> np.ndarray:
    # the MDX procedure clears the lowest 3 STFT bins (< 17 Hz); compare above that band
    return ss.filtfilt(*ss.butter(4, hz, "high", fs=44100), x, axis=-1)


def _relative_rms(a: np.ndarray, b: np.ndarray) -> float:
    core = (slice(None), slice(4000, -4000))
    return float(np.sqrt(np.mean((a[core] - b[core]) ** 2) / np.mean(b[core] ** 2)))


def test_shapes_come_from_the_onnx_input(tmp_path):
    sep = MdxSeparator(write_tiny_mdx_onnx(tmp_path / "m.onnx", dim_f=2048, dim_t=64))
    assert (sep.params.dim_f, sep.params.dim_t, sep.params.n_fft, sep.params.hop_length) == (2048, 64, 7680, 1024)
    assert MdxParams().chunk_size == 1024 * 255 and MdxParams().trim == 3840


@pytest.mark.parametrize("dim_t", [32, 256])
def test_identity_model_reconstructs_the_song(tmp_path, song, dim_t):
    """dim_t=32: ~6 overlapping chunks on the 2 s song (windowed overlap-add); 256: Kim_Vocal_2's single chunk."""
    waveform, rate = song
    sep = MdxSeparator(write_tiny_mdx_onnx(tmp_path / "id.onnx", dim_t=dim_t))
    vocals, vocal_rate = separate_vocals(waveform, rate, sep)
    mix = resample(waveform, rate, 44100).numpy()
    mix = mix * min(1.0, 0.9 / np.abs(mix).max())
    assert vocal_rate == 44100 and vocals.shape == mix.shape
    assert _relative_rms(_highpass(vocals.numpy() / 1.009), _highpass(mix)) < 2e-3


def test_overlap_add_on_a_longer_song_with_batches(tmp_path, song):
    waveform, rate = song
    long_song = torch.cat([waveform * 0.7, waveform * 0.4, waveform * 0.9, waveform * 0.5], dim=1)  # 8 s
    sep = MdxSeparator(write_tiny_mdx_onnx(tmp_path / "id.onnx", dim_t=32), MdxParams(batch_size=3))
    assert sep.params.dim_t == 32 and sep.params.batch_size == 3
    vocals, _ = separate_vocals(long_song, rate, sep)
    mix = resample(long_song, rate, 44100).numpy()
    assert _relative_rms(_highpass(vocals.numpy() / 1.009), _highpass(mix)) < 2e-3
    assert np.isfinite(vocals.numpy()).all()


def test_frequency_mask_keeps_the_low_tone_only(tmp_path):
    """A 'vocal' model keeping bins below 2 kHz: the 440 Hz tone passes (x1.009), the 6 kHz tone is removed."""
    t = np.arange(44100 * 2) / 44100
    low, high = 0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 6000 * t)
    stereo = torch.from_numpy(np.stack([low + high, low + high])).float()
    sep = MdxSeparator(write_tiny_mdx_onnx(tmp_path / "lp.onnx", dim_t=32, mask=lowpass_mask(2000.0)))
    vocals, _ = separate_vocals(stereo, 44100, sep)
    expected = np.stack([low, low]) * 1.009
    assert _relative_rms(vocals.numpy(), expected) < 1e-3


def test_channel_layout_is_left_re_im_then_right_re_im(tmp_path, song):
    """Gains (1, 1, 0, 0) on the 4 model channels keep exactly the left channel."""
    waveform, rate = song
    sep = MdxSeparator(write_tiny_mdx_onnx(tmp_path / "left.onnx", dim_t=32, channel_gains=(1, 1, 0, 0)))
    vocals, _ = separate_vocals(waveform, rate, sep)
    mix = resample(waveform, rate, 44100).numpy()
    mix = mix * min(1.0, 0.9 / np.abs(mix).max())
    assert _relative_rms(_highpass(vocals.numpy()[:1] / 1.009), _highpass(mix[:1])) < 2e-3
    assert np.abs(vocals.numpy()[1]).max() < 1e-6


def test_mono_8k_input_and_features_of_the_stem(tmp_path, song):
    waveform, rate = song
    mono_8k = resample(waveform.mean(0, keepdim=True), rate, 8000)
    sep = MdxSeparator(write_tiny_mdx_onnx(tmp_path / "id.onnx", dim_t=32))
    vocals, vocal_rate = separate_vocals(mono_8k, 8000, sep)
    # the mono channel is duplicated, and the two copies go through the batched STFT and the ONNX model side by
    # side: equal on every kernel variant we tried, but rows of one batch are not equal by construction
    assert vocals.shape[0] == 2
    torch.testing.assert_close(vocals[0], vocals[1], rtol=0, atol=1e-6)
    assert abs(prepare_waveform(vocals, vocal_rate).shape[0] - 32200) <= 1  # rounding of three rate changes


def test_errors(tmp_path, song):
    with pytest.raises(ModelFileMissingError, match="Kim_Vocal_2.onnx"):
        MdxSeparator(tmp_path / "Kim_Vocal_2.onnx")
    sep = MdxSeparator(write_tiny_mdx_onnx(tmp_path / "id.onnx", dim_t=32))
    with pytest.raises(InputError, match="3 channels"):
        separate_vocals(torch.zeros(3, 1000), 44100, sep)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(CheckpointError, match="not a readable ONNX"):
        MdxSeparator(broken)


def test_a_model_of_another_shape_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 16])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2, 16])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "other", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "other.onnx"))
    with pytest.raises(CheckpointError, match="Not an MDX-Net model"):
        MdxSeparator(tmp_path / "other.onnx")
