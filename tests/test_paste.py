"""Pasting the generated window back into the photo (``singer_core.pipeline.paste``): size, exact pixels outside the
window, a seam without steps, framings, colour match, errors, and memory that does not grow with the song."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from singer_core.errors import InputError
from singer_core.face.reference import crop_window
from singer_core.pipeline.paste import DEFAULT_BAND, PasteBack, Placement, even_size, paste_stream, placement_preview

REPO = Path(__file__).resolve().parents[1]


def textured_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth photo-like picture: gradients and a few waves (so it has its own local gradient everywhere)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rng = np.random.default_rng(seed)
    channels = []
    for c in range(3):
        value = 0.35 + 0.25 * x / width + 0.15 * y / height
        for _ in range(3):
            fx, fy, phase = rng.uniform(2, 9, 2).tolist() + [rng.uniform(0, 6.3)]
            value += 0.06 * np.sin(2 * np.pi * (fx * x / width + fy * y / height) + phase + c)
        channels.append(value)
    return (np.clip(np.stack(channels, -1), 0, 1) * 255).round().astype(np.uint8)


def generated_frames(photo: np.ndarray, box, size: tuple[int, int], count: int, offset: float = 0.08) -> torch.Tensor:
    """What the model makes of a window: the photo's window at the model size, shifted in colour (VAE drift) and
    with a moving bright blob in the middle (the singing face)."""
    x1, y1, x2, y2 = box
    window = torch.from_numpy(photo[y1:y2, x1:x2]).float().div(255).permute(2, 0, 1)[None]
    window = F.interpolate(window, size=(size[1], size[0]), mode="bilinear", antialias=True, align_corners=False)
    frames = window.permute(0, 2, 3, 1).repeat(count, 1, 1, 1) + torch.tensor([offset, -offset / 2, offset / 3])
    y, x = torch.meshgrid(torch.arange(size[1]), torch.arange(size[0]), indexing="ij")
    for k in range(count):
        blob = torch.exp(-((x - size[0] / 2 - k) ** 2 + (y - size[1] / 2) ** 2) / (0.02 * size[0] * size[1]))
        frames[k] += 0.3 * blob[..., None]
    return frames.clamp(0, 1)


def face_window(width: int, height: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The window ``framing='face'`` cuts for a face in the upper middle of the photo."""
    face = np.array([0.38 * width, 0.25 * height, 0.62 * width, 0.25 * height + 0.24 * width])
    return crop_window(width, height, face, size[0], size[1], "face", 2.0)


def outside_mask(placement: Placement) -> torch.Tensor:
    width, height = placement.canvas_size
    x1, y1, x2, y2 = placement.visible
    mask = torch.ones(height, width, dtype=torch.bool)
    mask[y1:y2, x1:x2] = False
    return mask


@pytest.mark.parametrize(("width", "height"), [(1080, 1920), (1920, 1080), (721, 1283)])
def test_full_size_and_the_photo_outside_the_window_bit_for_bit(width, height):
    photo = textured_photo(width, height)
    box = face_window(width, height, (512, 512))
    paste = PasteBack(photo, Placement.of(box, 512, 512, width, height))
    frames = generated_frames(photo, box, (512, 512), 3)
    out = paste.composite(frames)
    assert out.shape == (3, height - height % 2, width - width % 2, 3) and paste.size == even_size(width, height)
    assert paste.size == (width - width % 2, height - height % 2) and all(v % 2 == 0 for v in paste.size)
    image = torch.from_numpy(photo).float() / 255  # what Load Image gives for the photo
    outside = outside_mask(paste.placement)
    canvas = image[: paste.size[1], : paste.size[0]]
    assert torch.equal(out[:, outside], canvas[outside].expand(3, -1, -1))
    assert not torch.equal(out, canvas.expand_as(out))  # the window did change
    # A float IMAGE is kept as given: outside the window the output is that tensor's own values.
    noisy = image + torch.rand_like(image) * 1e-3
    out = PasteBack(noisy, paste.placement).composite(frames[:1])
    assert torch.equal(out[0][outside], noisy[: paste.size[1], : paste.size[0]][outside])


def _band_edges(placement: Placement, band: float) -> dict[str, tuple]:
    """Per edge of the band (outer: the window's edge, inner: where the band ends), on the left and the top side
    along the middle half of each: the pixel pair across it, and a pair just inside the window where the generated
    frame's own gradient is read (outside the window there is no generated frame)."""
    x1, y1, x2, y2 = placement.box
    pixels = int(np.ceil(placement.band_pixels(band) - 0.5))
    rows = torch.arange(y1 + (y2 - y1) // 4, y2 - (y2 - y1) // 4)
    cols = torch.arange(x1 + (x2 - x1) // 4, x2 - (x2 - x1) // 4)

    def across_x(a: int, b: int) -> tuple:
        return (rows, torch.full_like(rows, a)), (rows, torch.full_like(rows, b))

    def across_y(a: int, b: int) -> tuple:
        return (torch.full_like(cols, a), cols), (torch.full_like(cols, b), cols)

    return {
        "left outer": (across_x(x1 - 1, x1), across_x(x1, x1 + 1)),
        "left inner": (across_x(x1 + pixels - 1, x1 + pixels),) * 2,
        "top outer": (across_y(y1 - 1, y1), across_y(y1, y1 + 1)),
        "top inner": (across_y(y1 + pixels - 1, y1 + pixels),) * 2,
    }


def _difference(image: torch.Tensor, pair) -> torch.Tensor:
    (ay, ax), (by, bx) = pair
    return (image[..., ay, ax, :] - image[..., by, bx, :]).abs().amax(-1)


def _seam_report(photo: np.ndarray, placement: Placement, band: float, frames: torch.Tensor) -> dict[str, float]:
    """Per edge of the band: how far the step of the pasted frames across it exceeds the larger of the photo's own
    local gradient and the generated window's there (each read over the pair and its neighbours along the edge).
    With ``band`` 0 (a hard paste) it is measured at the edges the default band would have."""
    width, height = placement.canvas_size
    image = torch.from_numpy(photo).float()[:height, :width] / 255
    generated = PasteBack(photo, placement, band=0.0).composite(frames)  # the generated window alone, resized
    out = PasteBack(photo, placement, band=band).composite(frames)
    excess = {}
    for name, (pair, inside) in _band_edges(placement, band or DEFAULT_BAND).items():
        own = torch.maximum(_difference(image, pair).expand(len(out), -1), _difference(generated, inside))
        local = F.max_pool1d(own[:, None], 5, stride=1, padding=2)[:, 0]
        excess[name] = float((_difference(out, pair) - local).max())
    return excess


@pytest.mark.parametrize("band", [DEFAULT_BAND, 0.05, 0.25])
def test_the_seam_has_no_step_larger_than_the_pictures_own_gradients(band):
    photo = textured_photo(1080, 1920, seed=1)
    box = face_window(1080, 1920, (512, 512))
    placement = Placement.of(box, 512, 512, 1080, 1920)
    excess = _seam_report(photo, placement, band, generated_frames(photo, box, (512, 512), 2, offset=0.15))
    # Up to 1/255 of rounding: the step across each edge of the band is within the local gradient there.
    assert all(value <= 1 / 255 for value in excess.values()), excess


def test_the_seam_check_sees_a_hard_edge():
    """The same check fails for a window pasted without a band (it can fail)."""
    photo = textured_photo(1080, 1920, seed=1)
    box = face_window(1080, 1920, (512, 512))
    placement = Placement.of(box, 512, 512, 1080, 1920)
    excess = _seam_report(photo, placement, 0.0, generated_frames(photo, box, (512, 512), 2, offset=0.15))
    assert excess["left outer"] > 0.05 and excess["top outer"] > 0.05, excess


def test_framing_full_fills_the_photo_without_a_band():
    """framing='full': the window is the whole photo (squashed to the model size); pasted back it is the generated
    frame stretched to the photo: no edge lies inside the photo, so nothing is faded."""
    photo = textured_photo(1920, 1080)
    paste = PasteBack(photo, Placement.of((0, 0, 1920, 1080), 512, 512, 1920, 1080))
    frames = generated_frames(photo, (0, 0, 1920, 1080), (512, 512), 1)
    expected = F.interpolate(frames.permute(0, 3, 1, 2), size=(1080, 1920), mode="bicubic", antialias=True,
                             align_corners=False).clamp(0, 1).permute(0, 2, 3, 1)  # fmt: skip
    assert bool((paste.weights == 1).all())
    assert torch.equal(paste.composite(frames), expected)


def test_a_window_on_the_border_or_partly_outside_is_clipped_and_not_faded_there():
    photo = textured_photo(641, 480)  # odd width: the last column is dropped
    placement = Placement.of((-40, 100, 641, 400), 128, 64, 641, 480)
    assert placement.visible == (0, 100, 640, 400) and placement.canvas_size == (640, 480)
    paste = PasteBack(photo, placement)
    weights = paste.weights[..., 0]
    middle = weights[50:-50]  # away from the faded top and bottom
    assert bool((middle[:, 0] == 1).all()) and bool((middle[:, -1] == 1).all())  # left and right: on the borders
    assert float(weights[0].max()) < 0.01 and float(weights[-1].max()) < 0.01  # top and bottom: faded
    out = paste.composite(torch.rand(2, 64, 128, 3))
    image = torch.from_numpy(photo).float() / 255
    outside = outside_mask(placement)
    assert out.shape == (2, 480, 640, 3) and torch.equal(out[:, outside], image[:480, :640][outside].expand(2, -1, -1))


def test_color_match_pulls_the_window_to_the_photo_around_it():
    photo = textured_photo(720, 1280, seed=2)
    box = face_window(720, 1280, (256, 256))
    placement = Placement.of(box, 256, 256, 720, 1280)
    frames = generated_frames(photo, box, (256, 256), 2, offset=0.2)
    plain, matched = PasteBack(photo, placement), PasteBack(photo, placement, color_match=True)
    x1, y1, x2, y2 = box
    image = torch.from_numpy(photo).float() / 255
    ring = (plain.weights[..., 0] > 0) & (plain.weights[..., 0] < 1)

    def band_error(paste: PasteBack) -> float:
        window = paste._matched(paste._resized(frames)) if paste.color_match else paste._resized(frames)
        return float((window[:, ring].mean(1) - image[y1:y2, x1:x2][ring].mean(0)).abs().max())

    assert band_error(plain) > 0.1 and band_error(matched) < 0.01


def test_batches_do_not_change_the_result():
    photo = textured_photo(540, 960)
    box = face_window(540, 960, (128, 128))
    paste = PasteBack(photo, Placement.of(box, 128, 128, 540, 960), color_match=True)
    frames = generated_frames(photo, box, (128, 128), 5)
    whole = torch.cat(list(paste_stream([frames], paste)))
    pieces = torch.cat(list(paste_stream(frames.split(2), paste)))
    single = torch.cat([paste.composite(frame[None]) for frame in frames])
    assert torch.equal(whole, pieces) and torch.equal(whole, single)
    assert list(paste_stream(frames.split(2), None))[0] is not None  # no paste: the frames as they are


def test_placement_preview_shows_the_window_in_the_whole_photo():
    photo = textured_photo(1080, 1920)
    box = face_window(1080, 1920, (512, 512))
    placement = Placement.of(box, 512, 512, 1080, 1920)
    preview = placement_preview(photo, placement)
    image = torch.from_numpy(photo).float() / 255
    x1, y1, x2, y2 = box
    assert preview.shape == (1, 1920, 1080, 3)
    assert torch.allclose(preview[0, :y1 - 5], image[:y1 - 5] * 0.35)  # outside: dimmed
    centre = (y1 + y2) // 2, (x1 + x2) // 2
    assert torch.equal(preview[0, centre[0], centre[1]], image[centre[0], centre[1]])  # inside the band: as it is
    assert torch.equal(preview[0, centre[0], x1], torch.tensor([1.0, 0.85, 0.0]))  # the outline


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: PasteBack(textured_photo(64, 64), Placement.of((0, 0, 32, 32), 64, 64, 64, 64), band=0.7),
         "paste band must be a number from 0 to 0.5"),
        (lambda: Placement.of((100, 100, 200, 200), 64, 64, 80, 80), "does not lie on the 80x80 photo"),
        (lambda: PasteBack(textured_photo(64, 64), Placement.of((0, 0, 32, 32), 64, 64, 64, 64)).composite(
            torch.rand(1, 32, 32, 3)), "must be [n, 64, 64, 3], the reference's size"),
        (lambda: PasteBack(textured_photo(32, 32), Placement.of((0, 0, 32, 32), 64, 64, 64, 64)),
         "paste into the photo the reference was made from"),
    ],
)  # fmt: skip
def test_bad_input_is_named(call, words):
    with pytest.raises(InputError) as error:
        call()
    assert words in str(error.value)


MEMORY_CHILD = textwrap.dedent(
    """
    import json, resource, sys, weakref
    from pathlib import Path
    import torch
    sys.path.insert(0, sys.argv[1])
    from tests.test_paste import face_window, textured_photo
    from singer_core.pipeline.paste import PasteBack, Placement, paste_stream
    from singer_core.video_io import VideoWriter

    seconds, out = float(sys.argv[2]), Path(sys.argv[3])
    width, height, size, fps = 540, 960, 64, 25
    photo = textured_photo(width, height)
    paste = PasteBack(photo, Placement.of(face_window(width, height, (size, size)), size, size, width, height))
    alive, most = set(), 0

    def clips():  # what iter_clips yields: a clip of 16 window-sized frames at a time
        for start in range(0, int(seconds * fps), 16):
            yield torch.rand(min(16, int(seconds * fps) - start), size, size, 3)

    with VideoWriter(out, fps) as writer:
        for piece in paste_stream(clips(), paste):
            alive.add(id(piece))
            weakref.finalize(piece, alive.discard, id(piece))
            most = max(most, len(alive))
            writer.write(piece)
            del piece
    print(json.dumps({"frames": writer.frames, "most_pieces_alive": most, "piece_frames": paste.frames_per_piece,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def test_memory_does_not_grow_with_the_song(tmp_path):
    """4 s and 8 s of frames through the compositing writer: at most one full-size piece is alive at a time, and
    the peak memory grows by far less than the extra 100 frames at full size would take (100 x 5.9 MB). (Below
    ~3 s the H.264 encoder is still filling its look-ahead, which holds ~40 MB more by 100 frames, then stays.)"""
    rows = []
    for seconds in (4, 8):
        run = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(REPO), str(seconds), str(tmp_path / "v.mp4")],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        assert run.returncode == 0, run.stderr
        rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
    assert [row["frames"] for row in rows] == [100, 200]
    assert [row["most_pieces_alive"] for row in rows] == [1, 1]
    full_frame_mb = 540 * 960 * 3 * 4 / 2**20
    assert rows[1]["peak_rss_mb"] - rows[0]["peak_rss_mb"] < 5 * full_frame_mb, rows
