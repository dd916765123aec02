"""Mask, landmark and framing geometry of the face preprocessing (no models involved)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from singer_core.errors import InputError
from singer_core.face.landmarks import (
    FOREHEAD_RATIO,
    LEFT_BROW,
    MOUTH,
    RIGHT_BROW,
    face_oval_box,
    keypoints_from_landmarks,
    lip_box,
)
from singer_core.face.masks import build_face_masks, expand_region, mask_level_sizes
from singer_core.face.reference import box_from_mask, crop_window, normalized_pixels, to_rgb_uint8
from tests.conftest import DATA, fixture_io
from tests.tiny_models.face_onnx import landmark_template


def synthetic_landmarks(x1: float, y1: float, size: float) -> np.ndarray:
    """The tiny landmark model's 106-point face placed in a square box."""
    return landmark_template() * size + np.array([x1, y1])


def test_level_sizes_match_the_official_pyramid():
    assert mask_level_sizes(512, 512) == [(64, 64), (32, 32), (16, 16), (8, 8)]
    assert [h * w for h, w in mask_level_sizes(512, 512)] == [4096, 1024, 256, 64]
    assert mask_level_sizes(640, 384) == [(80, 48), (40, 24), (20, 12), (10, 6)]
    io = fixture_io("pipeline")  # official 256x256 run
    cells = [h * w for h, w in mask_level_sizes(256, 256)]
    assert cells == [io[f"input.full_mask.{i}"].shape[1] for i in range(4)] == [1024, 256, 64, 16]


@pytest.mark.parametrize("size", [(500, 512), (512, 0), (100, 64)])
def test_sizes_that_are_not_multiples_of_64_are_rejected(size):
    with pytest.raises(InputError, match="must be a positive multiple of 64"):
        mask_level_sizes(*size)


def test_expand_region_follows_the_official_arithmetic():
    # rounded box (100, 51, 200, 150): centre (150, 100) after floor, half sides 60 and 59
    assert expand_region(np.array([100.4, 50.6, 200.2, 150.0]), 300, 300, 1.2) == (90, 41, 210, 159)
    # a box crossing the border is shifted back inside, keeping its size
    assert expand_region(np.array([0, 0, 100, 100]), 200, 200, 1.5) == (0, 0, 150, 150)
    assert expand_region(np.array([100, 100, 200, 200]), 200, 200, 1.5) == (50, 50, 200, 200)


def test_face_oval_adds_a_forehead_and_lips_use_the_mouth_points():
    points = synthetic_landmarks(100, 50, 300)
    oval = face_oval_box(points)
    brows = points[np.concatenate([LEFT_BROW, RIGHT_BROW])]
    chin_to_brow = brows.mean(axis=0)[1] - points[0, 1]
    assert oval[1] == pytest.approx(brows[:, 1].min() + FOREHEAD_RATIO * chin_to_brow)
    assert oval[3] == pytest.approx(points[:, 1].max())  # chin
    assert oval[0] == pytest.approx(points[:33, 0].min()) and oval[2] == pytest.approx(points[:33, 0].max())
    np.testing.assert_allclose(lip_box(points), [*points[MOUTH].min(0), *points[MOUTH].max(0)])
    kps = keypoints_from_landmarks(points)
    assert kps[0, 0] < kps[1, 0] and kps[3, 0] < kps[4, 0]  # image-left first
    assert kps[0, 1] < kps[2, 1] < kps[3, 1]  # eyes above nose above mouth


def test_lip_mask_inside_face_mask_inside_face_region():
    points = synthetic_landmarks(150, 120, 300)  # 600x600 frame -> 512x512 output
    masks = build_face_masks(600, 600, face_oval_box(points), lip_box(points), 512, 512, 1.2)
    region = masks.face_region[0]
    assert masks.face_region.shape == (3, 512, 512) and torch.equal(masks.face_region[0], masks.face_region[2])
    # the face region is the oval box expanded by 1.2, resized from 600 to 512
    x1, y1, x2, y2 = (v * 512 / 600 for v in expand_region(face_oval_box(points), 600, 600, 1.2))
    inside = region > 0.5
    ys, xs = torch.nonzero(inside, as_tuple=True)
    assert abs(xs.min() - x1) <= 1 and abs(xs.max() + 1 - x2) <= 1
    assert abs(ys.min() - y1) <= 1 and abs(ys.max() + 1 - y2) <= 1
    grid_region = torch.nn.functional.interpolate(region[None, None], size=(64, 64), mode="area")[0, 0]
    full, face, lip = (m[0].view(64, 64) for m in (masks.full[0], masks.face[0], masks.lip[0]))
    assert float(grid_region[lip > 0.5].min()) > 0.99  # lips well inside the region
    assert float(grid_region[face > 0.5].min()) > 0.5  # face mask within the region
    on_face = grid_region > 0.99  # the official blur is wide: the pose mask fades out inside the region
    assert float(full[on_face].mean()) < 0.5 < float(full[~on_face].mean())
    center_y, center_x = (int(v) for v in torch.nonzero(on_face).float().mean(0))
    assert float(full[center_y, center_x]) < 0.1
    assert float(full[0, 0]) > 0.9 and float(lip[0, 0]) == 0.0
    lip_y, lip_x = divmod(int(lip.argmax()), 64)  # lip peak at the mouth
    mouth = points[MOUTH].mean(axis=0) * 512 / 600 / 8
    assert abs(lip_x - mouth[0]) <= 2 and abs(lip_y - mouth[1]) <= 2
    total = full + face + lip  # (255 - blur) + max(blur - lip, 0) + lip, in uint8 steps
    assert float((total[face > 0] - 1).abs().max()) <= 2 / 255
    assert float(total.min()) >= 1 - 2 / 255


def official_recipe(face_rect: np.ndarray, lip_rect: np.ndarray) -> list[np.ndarray]:
    """The official get_mask/blur_mask/preprocess steps for a 512x512 output, written out."""
    face_blur = cv2.normalize(cv2.GaussianBlur(cv2.resize(face_rect, (64, 64)), (51, 51), 0), None, 0, 255,
                              cv2.NORM_MINMAX)
    lip_blur = cv2.normalize(cv2.GaussianBlur(cv2.resize(lip_rect, (64, 64)), (31, 31), 0), None, 0, 255,
                             cv2.NORM_MINMAX)
    full = ((1.0 - face_blur / 255.0) * 255).astype(np.uint8)
    return [full, cv2.subtract(face_blur, lip_blur), lip_blur]


def test_masks_equal_the_official_recipe_at_512():
    points = synthetic_landmarks(200, 160, 420)
    frame_h, frame_w = 700, 760
    oval, lips = face_oval_box(points), lip_box(points)
    masks = build_face_masks(frame_h, frame_w, oval, lips, 512, 512, 1.2)
    rects = []
    for box, ratio in ((oval, 1.2), (lips, 2.0)):
        x1, y1, x2, y2 = expand_region(box, frame_w, frame_h, ratio)
        rect = np.zeros((frame_h, frame_w), np.uint8)
        rect[y1:y2, x1:x2] = 255
        rects.append(rect)
    for ours, official in zip((masks.full, masks.face, masks.lip), official_recipe(*rects), strict=True):
        for level, size in enumerate((64, 32, 16, 8)):
            expected = np.asarray(Image.fromarray(official).resize((size, size), Image.BILINEAR)) / 255.0
            assert ours[level].shape == (1, size * size)
            np.testing.assert_array_equal(ours[level].numpy().reshape(size, size), expected.astype(np.float32))
    region = np.asarray(Image.fromarray(rects[0]).resize((512, 512), Image.BILINEAR)) / 255.0
    np.testing.assert_array_equal(masks.face_region[1].numpy(), region.astype(np.float32))


@pytest.mark.parametrize("height,width", [(384, 640), (640, 384), (256, 256), (1024, 1024)])
def test_pyramids_for_other_sizes(height, width):
    points = synthetic_landmarks(100, 100, 200)
    masks = build_face_masks(400, 500, face_oval_box(points), lip_box(points), height, width, 1.2)
    assert masks.face_region.shape == (3, height, width)
    for pyramid in (masks.full, masks.face, masks.lip):
        assert [tuple(m.shape) for m in pyramid] == [(1, h * w) for h, w in mask_level_sizes(height, width)]
        assert all(float(m.min()) >= 0 and float(m.max()) <= 1 for m in pyramid)
    assert float(masks.lip[0].max()) == 1.0 and float(masks.full[0].max()) == 1.0


def test_face_region_larger_than_the_frame_is_clipped_not_wrapped():
    masks = build_face_masks(100, 100, np.array([-20, -30, 130, 120]), np.array([40, 60, 60, 70]), 64, 64, 1.5)
    assert float(masks.face_region.min()) == 1.0  # whole frame, no wrapped slice
    assert float(masks.full[0].max()) == 0.0  # constant face blur kept, not normalised to zero


def test_crop_window_frames_the_face():
    face = np.array([900.0, 500.0, 1100.0, 760.0])  # 200x260 face in a 3000x2000 photo
    x1, y1, x2, y2 = crop_window(3000, 2000, face, 512, 512, "face", 2.0)
    assert (x2 - x1, y2 - y1) == (520, 520)
    assert (x1 + x2) / 2 == pytest.approx(1000, abs=1) and (y1 + y2) / 2 == pytest.approx(630, abs=1)
    x1, y1, x2, y2 = crop_window(3000, 2000, face, 384, 640, "face", 2.0)  # portrait output
    assert (x2 - x1, y2 - y1) == (400, 667)  # the face width (x2) decides: 2 * 200 / (384 / 640)
    # a face filling a square photo: the whole photo; a wide photo: the largest square around the face
    assert crop_window(620, 620, np.array([150, 100, 470, 560]), 512, 512, "face", 2.0) == (0, 0, 620, 620)
    assert crop_window(1000, 500, np.array([50, 100, 250, 400]), 512, 512, "face", 2.0) == (0, 0, 500, 500)
    assert crop_window(1000, 500, face / 4, 512, 512, "full", 2.0) == (0, 0, 1000, 500)
    with pytest.raises(InputError, match="framing"):
        crop_window(1000, 500, face, 512, 512, "middle", 2.0)


def test_reference_pixels_match_the_official_fixture():
    """0001.png resized to 256x256 and normalised exactly as the official pipeline fixture."""
    rgb = np.asarray(Image.open(DATA / "0001.png").convert("RGB"))
    expected = fixture_io("pipeline")["input.ref_image"][0, 0]
    assert torch.equal(normalized_pixels(rgb, 256, 256), expected)


def test_image_conversion_and_mask_box():
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    comfy = torch.from_numpy(rgb).float().div(255)[None]  # ComfyUI IMAGE [1, H, W, 3]
    np.testing.assert_array_equal(to_rgb_uint8(comfy), rgb)
    np.testing.assert_array_equal(to_rgb_uint8(np.concatenate([rgb, rgb[:, :, :1]], axis=2)), rgb)
    with pytest.raises(InputError, match="single image"):
        to_rgb_uint8(comfy.repeat(2, 1, 1, 1))
    mask = torch.zeros(40, 50)
    mask[5:20, 10:30] = 1
    np.testing.assert_array_equal(box_from_mask(mask, 50, 40), [10, 5, 30, 20])
    with pytest.raises(InputError, match="empty"):
        box_from_mask(torch.zeros(40, 50), 50, 40)
    with pytest.raises(InputError, match="same image"):
        box_from_mask(torch.zeros(30, 50), 50, 40)
