"""Conformance runner for the ``audio_features`` case (fixtures README section 5).

The tiny wav2vec2 is rebuilt from the case alone: its config (``wav2vec_config`` in the case JSON, or the
sibling ``wav2vec_tiny.json``) and the weights ``wav2vec_tiny.weights.safetensors`` beside it. The song is the
file the case names (``wav``), resolved next to the case file; when absent (our repository keeps media in
``tests/data/``, fixtures in ``tests/fixtures/``) the runner falls back to ``../data/<name>`` and then to the
repository's ``tests/data/0001.wav``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import Wav2Vec2Config

from singer_core.audio.features import AudioFeatures, encode_audio
from singer_core.audio.wav2vec import build_wav2vec, load_state_into
from singer_core.audio.waveform import load_waveform
from singer_core.conformance.common import MODULE_ATOL, Comparison

_REPO_WAV = Path(__file__).resolve().parents[2] / "tests" / "data" / "0001.wav"
_STEPS = ("input_values", "conv_features", "projected_hidden", "last_hidden_state", "audio_emb", "audio_emb_windows")


def _case_stem(case_path: Path) -> str:
    return case_path.name.removesuffix(".json")


def _wav2vec_config(case: dict, case_path: Path) -> Wav2Vec2Config:
    if "wav2vec_config" in case:
        return Wav2Vec2Config.from_dict(case["wav2vec_config"])
    return Wav2Vec2Config.from_dict(json.loads((case_path.parent / "wav2vec_tiny.json").read_text())["config"])


def _resolve_wav(case: dict, case_path: Path) -> Path:
    name = case.get("wav", "0001.wav")
    for candidate in (case_path.parent / name, case_path.parent.parent / "data" / Path(name).name, _REPO_WAV):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"audio_features case: song {name!r} not found next to {case_path} nor at {_REPO_WAV}")


def run_audio_features(case: dict, case_path: Path) -> list[Comparison]:
    """Recompute every stored intermediate for each clip length the case lists."""
    case_path = Path(case_path)
    folder = case_path.parent
    io = load_file(str(folder / f"{_case_stem(case_path)}.io.safetensors"))
    weights = load_file(str(folder / "wav2vec_tiny.weights.safetensors"))
    model = load_state_into(build_wav2vec(_wav2vec_config(case, case_path)), weights, "wav2vec_tiny")
    waveform = load_waveform(_resolve_wav(case, case_path))
    comparisons = [Comparison("waveform.librosa_mono_16k", waveform, io["waveform.librosa_mono_16k"], MODULE_ATOL)]
    for clip_length in sorted(int(k) for k in case["clip_lengths"]):
        encoding = encode_audio(waveform, model, clip_length)
        features = AudioFeatures(encoding.embeddings, encoding.audio_length, 25, clip_length)
        actual = {
            "input_values": encoding.input_values,
            "conv_features": encoding.conv_features,
            "projected_hidden": encoding.projected_hidden,
            "last_hidden_state": encoding.last_hidden_state,
            "audio_emb": features.embeddings,
            "audio_emb_windows": features.windows,
        }
        expected_length = case["clip_lengths"][str(clip_length)]["audio_length_frames"]
        comparisons.append(
            Comparison(
                f"clip{clip_length}.audio_length",
                torch.tensor([float(encoding.audio_length)]),
                torch.tensor([float(expected_length)]),
                0.0,
            )
        )
        for step in _STEPS:
            name = f"clip{clip_length}.{step}"
            comparisons.append(Comparison(name, actual[step], io[name], MODULE_ATOL))
    return comparisons
