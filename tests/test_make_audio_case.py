"""tools/make_audio_case.py rebuilds the committed 44.1 kHz case (recording and expected values)."""

from __future__ import annotations

import importlib.util
import json

import torch
from safetensors.torch import load_file

from tests.conftest import FIXTURES

REPO = FIXTURES.parent.parent


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
    assert (tmp_path / case["wav"]).read_bytes() == (committed / case["wav"]).read_bytes()
    fresh, stored = load_file(str(tmp_path / "audio_features.io.safetensors")), load_file(
        str(committed / "audio_features.io.safetensors"))
    assert fresh.keys() == stored.keys()
    for name in stored:
        assert torch.allclose(fresh[name], stored[name], rtol=0, atol=1e-6), name
    assert json.loads((tmp_path / "audio_features.json").read_text())["clip_lengths"] == case["clip_lengths"]
