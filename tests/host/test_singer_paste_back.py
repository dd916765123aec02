"""Pasting back into the whole photo in a real ComfyUI server: the shipped full-frame workflow end to end on a
1080x1920 and a 1920x1080 picture (one with a painted face mask), and 'SINGER Paste Back' giving exactly the frames
the command line writes for the same inputs."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from PIL import Image

from singer_core.face import FaceModels, prepare_reference
from singer_core.pipeline import session
from singer_core.pipeline.paste import paste_stream
from singer_core.video_io import frames_to_uint8
from tests.host.harness import ON_0_3_75_ONLY, ON_BOTH_HOSTS, Prompt
from tests.host.test_singer_workflow import FPS, REPO, SIZE, _id, _saved_video, _set, _song_seconds, _use_tiny_models
from tests.host.workflow_api import workflow_to_api
from tests.test_paste import textured_photo

pytestmark = pytest.mark.host

FULL_FRAME_WORKFLOW = REPO / "workflows" / "singer_full_frame.json"
DETECTED = (576, 480, 1344, 1440)  # where the tiny detector reports a face on a 1920-long picture (its default box)
MASKED = (800, 250, 1100, 550)  # the face painted in the landscape picture's mask


def _picture(folder, name: str, width: int, height: int, face_box, mask: bool = False) -> np.ndarray:
    """A held-out-style picture: the example face on a textured background; with ``mask`` the face area is
    transparent (Load Image's MASK output is 1 where the alpha is 0: the painted face)."""
    photo = textured_photo(width, height, seed=width)
    x1, y1, x2, y2 = face_box[0], face_box[1], min(face_box[2], width), min(face_box[3], height)
    face = Image.open(REPO / "tests" / "data" / "0001.png").convert("RGB").resize((x2 - x1, y2 - y1))
    photo[y1:y2, x1:x2] = np.asarray(face)
    if mask:
        alpha = np.full((height, width, 1), 255, np.uint8)
        alpha[y1:y2, x1:x2] = 0
        Image.fromarray(np.concatenate([photo, alpha], -1), "RGBA").save(folder / name)
    else:
        Image.fromarray(photo).save(folder / name)
    return photo


def _reference(models_dir, photo: np.ndarray, mask_box=None, framing: str = "face"):
    """The reference as the command line makes it (tiny face models of the server's models folder)."""
    face_mask = None
    if mask_box is not None:
        face_mask = np.zeros(photo.shape[:2], np.float32)
        face_mask[mask_box[1] : mask_box[3], mask_box[0] : mask_box[2]] = 1
    models = FaceModels.load(models_dir / "insightface" / "models" / "antelopev2")
    return prepare_reference(photo, models, SIZE, SIZE, face_mask=face_mask, framing=framing)


def _outside(reference, width: int, height: int) -> np.ndarray:
    x1, y1, x2, y2 = reference.crop_box
    outside = np.ones((height, width), bool)
    outside[y1:y2, x1:x2] = False
    return outside


@ON_BOTH_HOSTS
@pytest.mark.parametrize(("width", "height", "masked"), [(1080, 1920, False), (1920, 1080, True)],
                         ids=["1080x1920", "1920x1080-face-mask"])  # fmt: skip
def test_full_frame_workflow_end_to_end(comfy_server, singer_models, models_dir, input_dir, run_prompt, width, height,
                                        masked):  # fmt: skip
    name = f"picture_{width}x{height}.png"
    photo = _picture(input_dir, name, width, height, MASKED if masked else DETECTED, mask=masked)
    prompt = workflow_to_api(json.loads(FULL_FRAME_WORKFLOW.read_text()), comfy_server.object_info())
    _use_tiny_models(prompt, singer_models)
    _set(prompt, "SingerSampler", steps=1, seed=3, dtype="fp32")
    _set(prompt, "SaveVideo", filename_prefix=f"full_frame/{width}x{height}")
    image = _set(prompt, "LoadImage", image=name)
    encode = _set(prompt, "SingerReferenceEncode", width=SIZE, height=SIZE)
    if masked:
        prompt[encode]["inputs"]["face_mask"] = [image, 1]
    outcome = run_prompt(prompt, timeout=900)
    assert outcome.status == "success", outcome.error

    with av.open(str(_saved_video(comfy_server, outcome, _id(prompt, "SaveVideo")))) as container:
        assert container.streams.audio, "the saved video has no audio stream"
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    assert frames.shape[1:] == (height, width, 3)
    assert abs(len(frames) - _song_seconds(input_dir / "0001.wav") * FPS) <= 1
    reference = _reference(models_dir, photo, MASKED if masked else None)
    if masked:  # the window is cut around the painted face: it lies inside the picture on every side
        x1, y1, x2, y2 = reference.crop_box
        assert 0 < x1 < x2 < width and 0 < y1 < y2 < height
    error = np.abs(frames.astype(int) - photo.astype(int))
    outside = _outside(reference, width, height)
    assert error[:, outside].mean() < 2.5  # the photo itself, through H.264
    # The preview shows the whole photo with the window in it.
    (preview,) = outcome.outputs[_id(prompt, "PreviewImage")]["images"]
    shown = np.asarray(Image.open(comfy_server.base_dir / preview["type"] / preview["subfolder"] / preview["filename"]))
    assert shown.shape == (height, width, 3)
    x1, y1, x2, y2 = reference.crop_box
    assert shown[(y1 + y2) // 2, (x1 + x2) // 2].tolist() == photo[(y1 + y2) // 2, (x1 + x2) // 2].tolist()
    assert shown[outside].mean() < 0.5 * photo[outside].mean()


@ON_0_3_75_ONLY  # the pack's own compositing, compared with the command line's: a second host cannot change it
@pytest.mark.parametrize("framing", ["face", "full"])
def test_paste_back_node_gives_the_command_lines_frames(comfy_server, singer_models, models_dir, input_dir,
                                                         run_prompt, framing):  # fmt: skip
    """The same photo and generated frames: the node's IMAGE (saved as PNG) is bit for bit what the command line's
    frame stream hands the encoder, and outside the window it is the photo itself (framing='full': no outside)."""
    photo = _picture(input_dir, "paste_photo.png", 1080, 1920, DETECTED)
    rng = np.random.default_rng(5)
    window = [(rng.random((SIZE, SIZE, 3)) * 255).astype(np.uint8) for _ in range(2)]
    for index, frame in enumerate(window):
        Image.fromarray(frame).save(input_dir / f"window_{index}.png")
    prompt = Prompt()
    image = prompt.add("LoadImage", image="paste_photo.png")
    vae = prompt.add("VAELoader", vae_name=singer_models["vae_name"])
    faces = prompt.add("SingerFaceAnalyzerLoader", model_pack=singer_models["model_pack"])
    ref = prompt.add("SingerReferenceEncode", image=Prompt.out(image), vae=Prompt.out(vae),
                     face_analyzer=Prompt.out(faces), width=SIZE, height=SIZE, face_expand_ratio=1.2, framing=framing,
                     face_index=0)  # fmt: skip
    first, second = (prompt.add("LoadImage", image=f"window_{index}.png") for index in range(2))
    frames = prompt.add("ImageBatch", image1=Prompt.out(first), image2=Prompt.out(second))
    pasted = prompt.add("SingerPasteBack", images=Prompt.out(frames), reference=Prompt.out(ref), band=0.15,
                        color_match=True)  # fmt: skip
    save = prompt.add("SaveImage", images=Prompt.out(pasted), filename_prefix=f"paste_back/{framing}")
    outcome = run_prompt(prompt, timeout=300)
    assert outcome.status == "success", outcome.error
    node = np.stack([np.asarray(Image.open(comfy_server.base_dir / "output" / f["subfolder"] / f["filename"]))
                     for f in outcome.outputs[save]["images"]])  # fmt: skip

    reference = _reference(models_dir, photo, framing=framing)
    assert (reference.crop_box == (0, 0, 1080, 1920)) == (framing == "full")
    paste = session.paste_back(photo, reference, True, 0.15, True)  # what generate --full-frame builds
    generated = torch.from_numpy(np.stack(window)).float() / 255
    cli = np.concatenate([frames_to_uint8(piece) for piece in paste_stream([generated], paste)])
    assert node.shape == cli.shape == (2, 1920, 1080, 3)
    assert np.array_equal(node, cli)
    outside = _outside(reference, 1080, 1920)
    assert np.array_equal(node[:, outside], np.broadcast_to(photo[outside], node[:, outside].shape))
