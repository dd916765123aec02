"""Reading videos for data preparation: 25 fps resampling by time stamps, rotation, bad files."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from singer_core.data.video import VideoFileError, frames_at_fps, probe_video, read_audio_track, upright


def numbered_video(path, fps, count, size=32) -> str:
    """Frame i is a flat grey of level 4 * i (read back as round(level / 4))."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0"}
        for i in range(count):
            image = np.full((size, size, 3), 4 * i, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return str(path)


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30), Fraction(24), Fraction(60), Fraction(15),
                                 Fraction(30000, 1001)])
def test_any_frame_rate_gives_the_nearest_frame_at_25_fps(tmp_path, fps):
    count = int(round(fps))  # one second
    frames = list(frames_at_fps(numbered_video(tmp_path / "v.mp4", fps, count), 25))
    duration = count / float(fps)
    assert len(frames) == int(np.ceil(duration * 25 - 1e-6))
    shown = [round(float(f.mean()) / 4) for f in frames]
    nearest = [min(int(np.floor(k / 25 * float(fps) + 0.5)), count - 1) for k in range(len(frames))]
    assert shown == nearest


def test_phone_video_rotation_is_applied_like_players():
    """A display matrix of -90 degrees (a phone held upright) turns the stored landscape frame clockwise."""
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = 255  # top-left pixel of the coded (landscape) frame
    turned = upright(image, -90)
    assert turned.shape == (3, 2, 3) and turned[0, 1, 0] == 255  # clockwise: top-left goes to top-right
    assert upright(image, 0) is image and upright(image, 180)[1, 2, 0] == 255


def test_bad_files_name_the_file_and_the_reason(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoFileError, match="garbage.mp4") as error:
        probe_video(garbage)
    assert error.value.reason == "corrupt"
    silent = probe_video(numbered_video(tmp_path / "mute.mp4", Fraction(25), 5))
    with pytest.raises(VideoFileError, match="mute.mp4 has no audio track") as error:
        read_audio_track(silent)
    assert error.value.reason == "no_audio"
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((tmp_path / "mute.mp4").read_bytes()[:300])
    with pytest.raises(VideoFileError, match="truncated.mp4"):
        probe_video(truncated)
