"""The mp4 writer: H.264 frames, AAC audio cut to the video, odd rates and layouts."""

from __future__ import annotations

import io
import json
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from singer_core.errors import InputError
from singer_core.video_io import VideoWriter, frames_to_uint8, write_video


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


def _decoded(target):
    with av.open(target) as container:
        video = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
        container.seek(0)
        audio = np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)
        return video, audio, dict(container.metadata)


@pytest.mark.parametrize("rate", [16000, 37800])
def test_writing_piece_by_piece_gives_the_same_file_content(tmp_path, rate):
    """The streaming writer (one clip at a time, the song encoded alongside) decodes to exactly what
    writing the whole video at once gives, also when the song is resampled for AAC."""
    frames = torch.rand(23, 16, 16, 3, generator=torch.manual_seed(0))
    song = torch.rand(2, rate, generator=torch.manual_seed(1)) - 0.5  # 1 s, longer than the video: cut
    whole = write_video(tmp_path / "whole.mp4", frames, fps=25, audio=song, sample_rate=rate)
    with VideoWriter(tmp_path / "pieces.mp4", 25, song, rate) as writer:
        for piece in frames.split(5):
            writer.write(piece)
    assert writer.frames == 23
    (video_a, audio_a, _), (video_b, audio_b, _) = _decoded(str(whole)), _decoded(str(tmp_path / "pieces.mp4"))
    assert np.array_equal(video_a, video_b) and len(video_a) == 23
    assert audio_a.shape == audio_b.shape and np.array_equal(audio_a, audio_b)
    assert abs(audio_a.shape[1] / (48000 if rate == 37800 else rate) - 23 / 25) < 0.05


def test_writer_to_a_file_object_with_metadata_and_a_float_rate(tmp_path):
    buffer = io.BytesIO()
    with VideoWriter(buffer, 12.5, metadata={"prompt": {"1": "x"}, "title": "song"}) as writer:
        writer.write(torch.rand(5, 16, 16, 3))
    buffer.seek(0)
    with av.open(buffer) as container:
        assert container.streams.video[0].average_rate == Fraction(25, 2)
        assert container.metadata["title"] == "song" and json.loads(container.metadata["prompt"]) == {"1": "x"}
        assert sum(1 for _ in container.decode(video=0)) == 5


def test_writer_refuses_a_change_of_size_and_leaves_no_file(tmp_path):
    path = tmp_path / "x.mp4"
    with pytest.raises(InputError, match="All frames must be 16x16"):
        with VideoWriter(path, 25) as writer:
            writer.write(torch.rand(2, 16, 16, 3))
            writer.write(torch.rand(2, 32, 32, 3))
    assert not path.exists()
    with pytest.raises(InputError, match="No video frames"):
        VideoWriter(path, 25).close()


@pytest.mark.parametrize("rate", [16000, 37800])
def test_song_muxed_from_its_file_equals_the_decoded_song(tmp_path, rate):
    """``VideoWriter(audio=path)`` decodes the song frame by frame as the video advances (the command line's
    way to keep a long song out of memory): the same AAC track as passing the decoded song, clamping and
    cutting included."""
    from singer_core.audio.waveform import read_audio_file

    song = (torch.rand(2, 3 * rate // 2, generator=torch.manual_seed(2)) - 0.5) * 2.4  # 1.5 s, peaks past 1
    wav = tmp_path / "song.wav"
    pcm = (song.clamp(-1, 1) * 32767).round().short().numpy()
    with av.open(str(wav), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1).copy(), format="s16", layout="stereo")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    frames = torch.rand(23, 16, 16, 3, generator=torch.manual_seed(0))
    decoded, decoded_rate = read_audio_file(wav)
    outputs = []
    for name, audio, audio_rate in [("tensor", decoded, decoded_rate), ("file", wav, None)]:
        with VideoWriter(tmp_path / f"{name}.mp4", 25, audio, audio_rate) as writer:
            for piece in frames.split(4):
                writer.write(piece)
        outputs.append(_decoded(str(tmp_path / f"{name}.mp4")))
    (video_a, audio_a, _), (video_b, audio_b, _) = outputs
    assert np.array_equal(video_a, video_b)
    assert audio_a.shape == audio_b.shape and np.array_equal(audio_a, audio_b)
    assert abs(audio_a.shape[1] / (48000 if rate == 37800 else rate) - 23 / 25) < 0.05


@pytest.mark.parametrize("rate", [16000, 44100])
def test_audio_starts_in_sync_with_the_video(tmp_path, rate):
    """AAC's encoder delay (priming samples) is hidden by the container: a click written at 1.000 s decodes at
    1.000 s, so lips and song start together (the extra decoded samples are padding at the end)."""
    audio = np.zeros((1, 3 * rate), np.float32)
    audio[0, rate : rate + rate // 200] = 0.9
    path = write_video(tmp_path / "click.mp4", torch.zeros(75, 64, 64, 3), 25, torch.from_numpy(audio), rate)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        decoded = np.concatenate([frame.to_ndarray().mean(0) for frame in container.decode(stream)])
        out_rate = stream.rate
    assert abs(int(np.argmax(np.abs(decoded) > 0.3)) / out_rate - 1.0) <= 1 / out_rate
    assert decoded.shape[0] >= 3 * out_rate


@pytest.mark.parametrize(
    ("encoding", "muxer", "decoder", "pixels", "audio"),
    [
        (dict(container="mkv", codec="h264", crf=0.0, preset="ultrafast"), "matroska", "h264", "yuv420p", "aac"),
        (dict(container="webm", codec="av1", crf=40.0), "webm", "dav1d", "yuv420p", "opus"),
        (dict(container="mp4", codec="av1", bit_depth=10), "mp4", "dav1d", "yuv420p10le", "aac"),
        (dict(container="mp4", bit_depth=10, color_space="sRGB"), "mp4", "h264", "yuv420p10le", "aac"),
    ],
)
def test_every_container_codec_depth_and_tag(tmp_path, encoding, muxer, decoder, pixels, audio):
    """The encodings ComfyUI's Save Video asks for: the file has the container, codec, pixel format and audio
    asked for, the frames written, and sRGB tags only when asked (x264 CRF 0 is lossless up to the YUV step)."""
    from singer_core.video_io import Encoding

    frames = torch.linspace(0, 1, 8 * 64 * 64 * 3).reshape(8, 64, 64, 3)
    path = tmp_path / f"out.{encoding['container']}"
    with VideoWriter(path, 25, torch.zeros(1, 16000), 16000, encoding=Encoding(**encoding)) as writer:
        writer.write(frames[:5])
        writer.write(frames[5:])
    with av.open(str(path)) as container:
        video = container.streams.video[0].codec_context
        assert muxer in container.format.name and decoder in video.codec.name
        assert video.pix_fmt == pixels and int(video.color_trc) == (13 if "color_space" in encoding else 2)
        assert container.streams.audio[0].codec_context.name == audio
        decoded = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    assert decoded.shape == (8, 64, 64, 3)
    assert np.abs(decoded.astype(int) - frames_to_uint8(frames).astype(int)).mean() < 3


@pytest.mark.parametrize(
    ("encoding", "words"),
    [
        (dict(container="webm", codec="h264"), "AV1"),
        (dict(container="avi"), "container"),
        (dict(codec="h265"), "codec"),
        (dict(crf=52.0), "0..51"),
        (dict(preset="turbo"), "preset"),
        (dict(bit_depth=12), "bit_depth"),
        (dict(color_space="HDR"), "sRGB"),
    ],
)
def test_an_encoding_nobody_can_write_is_refused_with_its_reason(encoding, words):
    from singer_core.video_io import Encoding

    with pytest.raises(InputError, match=words):
        Encoding(**encoding)
