"""The mp4 writer: H.264 frames, AAC audio cut to the video, odd rates and layouts."""

from __future__ import annotations

import av
import pytest
import torch

from singer_core.errors import InputError
from singer_core.video_io import frames_to_uint8, write_video


def read_back(path):
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        audio = container.streams.audio[0] if container.streams.audio else None
        info = None if audio is None else (audio.codec_context.name, audio.rate, audio.channels,
                                           float(audio.duration * audio.time_base))  # fmt: skip
    return frames, info


def test_frames_and_song_are_written(tmp_path):
    frames = torch.zeros(10, 32, 48, 3)
    frames[:, :, :24, 0] = 1.0  # left half red
    song = torch.sin(torch.arange(16000) / 10.0)[None].repeat(2, 1) * 0.5  # 1 s stereo
    path = write_video(tmp_path / "out.mp4", frames, fps=25, audio=song, sample_rate=16000)
    decoded, audio = read_back(path)
    assert len(decoded) == 10 and decoded[0].shape == (32, 48, 3)
    assert decoded[0][:, :16, 0].mean() > 200 and decoded[0][:, 32:, 0].mean() < 50
    name, rate, channels, duration = audio
    assert (name, rate, channels) == ("aac", 16000, 2)
    assert abs(duration - 10 / 25) < 0.1  # cut to the video, as the official export


def test_unusual_rate_and_mono_are_resampled(tmp_path):
    song = torch.rand(37800) - 0.5  # 1 s mono at a rate AAC does not take
    path = write_video(tmp_path / "out.mp4", torch.rand(5, 16, 16, 3), fps=5, audio=song, sample_rate=37800)
    _, (name, rate, channels, duration) = read_back(path)
    assert (name, rate, channels) == ("aac", 48000, 1) and abs(duration - 1.0) < 0.1


def test_video_without_audio(tmp_path):
    decoded, audio = read_back(write_video(tmp_path / "silent.mp4", torch.rand(3, 16, 16, 3), fps=25))
    assert len(decoded) == 3 and audio is None


def test_bad_frames_are_refused(tmp_path):
    with pytest.raises(InputError, match="frames, height, width, 3"):
        write_video(tmp_path / "x.mp4", torch.rand(3, 3, 16, 16), fps=25)
    with pytest.raises(InputError, match="even frame sizes"):
        write_video(tmp_path / "x.mp4", torch.rand(3, 15, 16, 3), fps=25)


def test_uint8_conversion_truncates_like_the_official_export():
    values = torch.tensor([0.0, 0.5, 1.0, 1.5, -0.2]).view(1, 1, 5, 1).expand(1, 1, 5, 3)
    assert frames_to_uint8(values)[0, 0, :, 0].tolist() == [0, 127, 255, 255, 0]
