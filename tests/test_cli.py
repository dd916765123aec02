"""``python -m singer_core generate`` end to end on tiny models written to a temporary models folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from singer_core.__main__ import main
from singer_core.audio.waveform import read_audio_file
from tests.tiny_models.models_dir import write_tiny_cli_models
from tests.tiny_models.separator import write_tiny_mdx_onnx

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return write_tiny_cli_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def excerpt(tmp_path_factory) -> Path:
    """The first 0.6 s of the example song (stereo, 16 kHz) as a wav: 15 frames = 2 clips of 8."""
    waveform, rate = read_audio_file(DATA / "0001.wav")
    pcm = (waveform[:, : int(0.6 * rate)].clamp(-1, 1) * 32767).round().short().numpy()
    path = tmp_path_factory.mktemp("song") / "excerpt.wav"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.T.reshape(1, -1)), format="s16", layout="stereo")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def args(models: Path, out: Path, *extra: str, audio: Path = DATA / "0001.wav") -> list[str]:
    return [
        "generate", "--image", str(DATA / "0001.png"), "--audio", str(audio),
        "--out", str(out), "--models", str(models), "--size", "64", "--steps", "1", *extra,
    ]  # fmt: skip


def test_generate_writes_an_h264_mp4_with_the_song(models, excerpt, tmp_path, capsys):
    out = tmp_path / "song.mp4"
    assert main(args(models, out, "--clip-length", "8", audio=excerpt)) == 0
    assert f"wrote {out} (15 frames" in capsys.readouterr().out
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and (video.width, video.height) == (64, 64)
        assert video.average_rate == 25
        assert sum(1 for _ in container.decode(video=0)) == 15  # 0.6 s * 25 fps
        assert audio.codec_context.name == "aac" and audio.rate == 16000 and audio.channels == 2
        assert abs(float(audio.duration * audio.time_base) - 15 / 25) < 0.1


def test_options_and_the_vocal_separator_reach_the_pipeline(models, excerpt, tmp_path, capsys):
    with_separator = tmp_path / "models"
    shutil.copytree(models, with_separator)
    write_tiny_mdx_onnx(with_separator / "audio_separator" / "Kim_Vocal_2.onnx")
    out = tmp_path / "options.mp4"
    extra = ("--clip-length", "8", "--overlap", "2", "--scheduler", "dpmpp", "--color-match", "--motion-source",
             "latent", "--decode-batch", "4", "--seed", "3", "--lip-weight", "0.5")  # fmt: skip
    assert main(args(with_separator, out, *extra, audio=excerpt)) == 0
    assert f"wrote {out} (15 frames" in capsys.readouterr().out
    assert main(args(with_separator, out, "--dry-run", audio=excerpt)) == 0
    assert f"vocal separator: {with_separator / 'audio_separator' / 'Kim_Vocal_2.onnx'}" in capsys.readouterr().out


def test_dry_run_checks_everything_and_writes_nothing(models, tmp_path):
    out = tmp_path / "dry.mp4"
    run = subprocess.run(
        [sys.executable, "-m", "singer_core", *args(models, out, "--dry-run")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "keys verified" in run.stdout and "51 frames, 4 clips of 16" in run.stdout
    assert "face found" in run.stdout and not out.exists()


@pytest.mark.parametrize(
    ("remove", "named"),
    [
        ("insightface/models/antelopev2/glintr100.onnx", "glintr100.onnx"),
        ("singer", "singer"),
        ("vae/sd-vae-tiny", "No VAE in"),
        ("wav2vec2", "wav2vec2"),
    ],
)
def test_missing_model_files_are_named(models, tmp_path, capsys, remove, named):
    broken = tmp_path / "models"
    shutil.copytree(models, broken)
    target = broken / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    assert main(args(broken, tmp_path / "x.mp4", "--dry-run")) == 2
    error = capsys.readouterr().err
    assert named in error and str(broken) in error


def test_bad_option_is_reported_by_name(models, tmp_path, capsys):
    assert main(args(models, tmp_path / "x.mp4", "--size", "100")) == 2
    assert "width must be a positive multiple of 64" in capsys.readouterr().err


def test_unreadable_image_is_reported(models, tmp_path, capsys):
    image = tmp_path / "face.png"
    image.write_text("not an image")
    argv = args(models, tmp_path / "x.mp4")
    argv[argv.index("--image") + 1] = str(image)
    assert main(argv) == 2
    assert "Cannot read the reference image" in capsys.readouterr().err


def test_cfg_one_selects_the_no_guidance_branch(tmp_path):
    from singer_core.__main__ import _options, _parser

    parsed = _parser().parse_args(args(tmp_path, tmp_path / "x.mp4", "--cfg", "1"))
    assert _options(parsed).guidance == 1.0
    assert _options(_parser().parse_args(args(tmp_path, tmp_path / "x.mp4"))).guidance == 3.5


def test_silent_song_is_refused_with_the_nodes_words(models, tmp_path, capsys):
    """The silence check lives in the library: the CLI says what SINGER Audio Encode says (tests/host)."""
    import wave

    silent = tmp_path / "silence.wav"
    with wave.open(str(silent), "wb") as song:
        song.setnchannels(2)
        song.setsampwidth(2)
        song.setframerate(44100)
        song.writeframes(b"\0\0" * 2 * 44100)
    assert main(args(models, tmp_path / "x.mp4", audio=silent)) == 2
    assert "The audio is silent (its loudest sample is below -60 dBFS)" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()
