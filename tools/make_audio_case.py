"""Make an ``audio_features`` conformance case from a real recording at any sample rate.

    python tools/make_audio_case.py --source tests/fixtures/audio_48k/singing_48k.wav --rate 44100 \
        --seconds 4 --out tests/fixtures/audio_44k

1. The recording: ``--seconds`` of ``--source`` resampled to ``--rate`` with soxr at its very-high quality and
   written as 16-bit stereo WAV (a stand-in for a song exported at that rate; any rate the user has works).
2. The expected values, computed with the official recipe and NOT with ``singer_core.audio``:
   ``librosa.load(wav, sr=16000)``, transformers' ``Wav2Vec2FeatureExtractor`` (``do_normalize=True``), the
   official zero padding to a multiple of the clip length, then the Hallo ``Wav2VecModel.forward`` steps
   written out on transformers' own ``Wav2Vec2Model`` sub-modules (conv feature extractor, linear interpolation
   to the 25 fps frame count with ``align_corners=True``, feature projection, encoder with every hidden state)
   and ``process_audio_emb``'s 5-frame windows (fixtures README section 5).
3. ``audio_features.json`` / ``audio_features.io.safetensors`` in the shared fixtures' format, plus the tiny
   wav2vec2 weights, so ``python -m singer_core.conformance <out>/audio_features.json`` replays it.

Needs librosa and soundfile (requirements-test.txt).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import librosa
import numpy as np
import soundfile
import soxr
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file, save_file
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

REPO = Path(__file__).resolve().parents[1]
FPS = 25
SAMPLES_PER_FRAME = 16000 // FPS


def make_recording(source: Path, rate: int, seconds: float, out: Path) -> None:
    pcm, source_rate = soundfile.read(str(source), dtype="float64", always_2d=True)
    pcm = pcm[: int(round(seconds * source_rate))]
    if pcm.shape[1] == 1:
        pcm = np.repeat(pcm, 2, axis=1)
    resampled = soxr.resample(pcm, source_rate, rate, quality="VHQ")
    soundfile.write(str(out), np.clip(resampled, -1.0, 32767 / 32768), rate, subtype="PCM_16")


def official_features(wav: Path, model: Wav2Vec2Model, clip_length: int) -> dict[str, torch.Tensor]:
    speech, _ = librosa.load(str(wav), sr=16000)
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    )
    values = np.squeeze(extractor(speech, sampling_rate=16000).input_values)
    values = torch.from_numpy(values).float()
    seq_len = math.ceil(len(values) / 16000 * FPS)
    audio_length = seq_len
    if seq_len % clip_length != 0:
        values = F.pad(values, (0, (clip_length - seq_len % clip_length) * SAMPLES_PER_FRAME))
        seq_len += clip_length - seq_len % clip_length
    values = values[None]
    captured: dict[str, torch.Tensor] = {}

    def interpolate(_module, _inputs, conv):  # Hallo's override: 50 Hz conv features -> seq_len frames
        captured["conv"] = conv
        return F.interpolate(conv, size=seq_len, align_corners=True, mode="linear")

    def keep_projection(_module, _inputs, output):
        captured["projected"] = output[0]

    hooks = [model.feature_extractor.register_forward_hook(interpolate),
             model.feature_projection.register_forward_hook(keep_projection)]
    try:
        with torch.no_grad():
            encoded = model(values, output_hidden_states=True, return_dict=True)
    finally:
        for hook in hooks:
            hook.remove()
    conv, projected = captured["conv"], captured["projected"]
    audio_emb = torch.stack(encoded.hidden_states[1:], dim=1).squeeze(0).transpose(0, 1).contiguous()
    index = (torch.arange(seq_len)[:, None] + torch.arange(-2, 3)[None]).clamp(0, seq_len - 1)
    return {
        "input_values": values,
        "conv_features": conv,
        "projected_hidden": projected,
        "last_hidden_state": encoded.last_hidden_state,
        "audio_emb": audio_emb,
        "audio_emb_windows": audio_emb[index].contiguous(),
        "audio_length": torch.tensor(audio_length),
        "seq_len": torch.tensor(seq_len),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="a real recording (any rate, mono or stereo)")
    parser.add_argument("--rate", type=int, default=44100, help="sample rate of the case's recording")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--out", type=Path, required=True, help="case folder to write")
    parser.add_argument("--clip-lengths", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--model", type=Path, default=REPO / "tests" / "fixtures" / "wav2vec_tiny",
                        help="<stem> of <stem>.json (config) and <stem>.weights.safetensors")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    wav_name = f"recording_{args.rate // 1000}k.wav" if args.rate % 1000 == 0 else f"recording_{args.rate}.wav"
    make_recording(args.source, args.rate, args.seconds, args.out / wav_name)

    model_json = json.loads(args.model.with_suffix(".json").read_text())
    config = Wav2Vec2Config.from_dict(model_json["config"])
    model = Wav2Vec2Model(config).eval()
    weights = args.model.with_name(args.model.name + ".weights.safetensors")
    model.load_state_dict(load_file(str(weights)), strict=True)
    shutil.copy(weights, args.out / "wav2vec_tiny.weights.safetensors")

    speech, _ = librosa.load(str(args.out / wav_name), sr=16000)
    tensors = {"waveform.librosa_mono_16k": torch.from_numpy(speech)}
    clip_info = {}
    for clip_length in args.clip_lengths:
        steps = official_features(args.out / wav_name, model, clip_length)
        for step in ("input_values", "conv_features", "projected_hidden", "last_hidden_state", "audio_emb",
                     "audio_emb_windows"):
            tensors[f"clip{clip_length}.{step}"] = steps[step].float().contiguous()
        clip_info[str(clip_length)] = {
            "seq_len": int(steps["seq_len"]),
            "audio_length_frames": int(steps["audio_length"]),
            "num_samples_after_padding": int(steps["input_values"].shape[-1]),
        }
    save_file(tensors, str(args.out / "audio_features.io.safetensors"))
    info = soundfile.info(str(args.out / wav_name))
    case = {
        "official": "librosa.load(wav, sr=16000) + Wav2Vec2FeatureExtractor + Hallo Wav2VecModel.forward steps on "
        "transformers' Wav2Vec2Model sub-modules + process_audio_emb (tools/make_audio_case.py)",
        "wav2vec_config": config.to_dict(),
        "feature_extractor_config": model_json.get("feature_extractor", {}),
        "wav": wav_name,
        "wav_info": f"{info.channels} channels, {info.samplerate} Hz, {info.subtype}, {info.frames} samples/channel; "
        f"made from {args.source.name} ({args.seconds} s) with soxr VHQ",
        "vocal_separator": "skipped, as in the shared audio_features cases",
        "clip_lengths": clip_info,
        "generator": {
            "tool": "tools/make_audio_case.py",
            "librosa": librosa.__version__,
            "soxr": soxr.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "io": {name: [list(t.shape), "float32"] for name, t in tensors.items()},
    }
    (args.out / "audio_features.json").write_text(json.dumps(case, indent=1) + "\n")
    print(f"wrote {args.out} ({', '.join(sorted(p.name for p in args.out.iterdir()))})")


if __name__ == "__main__":
    main()
