"""tools/make_audio_case.py rebuilds the committed 44.1 kHz case (recording and expected values)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import soundfile
import torch
from safetensors.torch import load_file

from singer_core.conformance.common import MODULE_ATOL
from tests.conftest import FIXTURES

REPO = FIXTURES.parent.parent
# The committed case was made on another machine. The recording is soxr VHQ output rounded to 16 bits: equal
# samples where soxr takes the same code path (AVX on x86), but a float difference of another path (its scalar
# one moves the 16 kHz waveform by 8.9e-8) can flip a rounding by one step. The expected values are float32
# computations of the tiny wav2vec2: the conformance tolerance (MODULE_ATOL, 1e-5), since the thread count alone
# moves them by 1.4e-6 (tests/fixtures/README.md) and soxr's scalar path by more than 1e-6.
PCM_LSB_TOLERANCE = 1


def _tool():
    spec = importlib.util.spec_from_file_location("make_audio_case", REPO / "tools" / "make_audio_case.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerates_the_committed_44k_case(tmp_path):
    committed = FIXTURES / "audio_44k"
    case = json.loads((committed / "audio_features.json").read_text())
    _tool().main(["--source", str(FIXTURES / "audio_48k" / "singing_48k.wav"), "--rate", "44100", "--seconds", "3",
                  "--out", str(tmp_path)])
    made, kept = (soundfile.read(str(folder / case["wav"]), dtype="int16") for folder in (tmp_path, committed))
    assert made[1] == kept[1] and made[0].shape == kept[0].shape
    assert np.abs(made[0].astype(int) - kept[0].astype(int)).max() <= PCM_LSB_TOLERANCE
    fresh, stored = load_file(str(tmp_path / "audio_features.io.safetensors")), load_file(
        str(committed / "audio_features.io.safetensors"))
    assert fresh.keys() == stored.keys()
    for name in stored:
        assert torch.allclose(fresh[name], stored[name], rtol=0, atol=MODULE_ATOL), name
    assert json.loads((tmp_path / "audio_features.json").read_text())["clip_lengths"] == case["clip_lengths"]
