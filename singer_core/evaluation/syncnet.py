"""LSE-D / LSE-C: lip-sync error with SyncNet (Chung & Zisserman 2016), as ``joonson/syncnet_python``
computes it (the scores of Wav2Lip and of every talking-head paper since).

Protocol of ``SyncNetInstance.evaluate`` (reproduced exactly; tests compare with the real code):

* video: 25 fps, 224x224 face crops, BGR, pixel values 0..255 as float (no normalisation). The reference
  extracts the frames with the ``ffmpeg`` command line into JPEG files (``-f image2``: mjpeg at the default
  200 kb/s rate control, full-range yuv420p after a bicubic range conversion) and reads them back with
  ``cv2.imread``. :func:`syncnet_frames` does the same JPEG round trip with PyAV's libavcodec, so the pixels
  SyncNet sees are the reference's pixels, not the cleaner decoded frames;
* audio: mono 16 kHz int16 (``ffmpeg -ac 1 -acodec pcm_s16le -ar 16000``), MFCC from
  ``python_speech_features.mfcc`` with its defaults (13 coefficients, 100 per second), not normalised;
* windows: 5 frames (0.2 s) of video against the 20 MFCC columns starting at frame*4;
  ``min(frames, floor(samples / 640)) - 5`` windows (the last window of the reference is dropped too);
* distances: for every video window i and offset o in -15..15, ``pairwise_distance`` (L2, eps 1e-6) to the
  audio window i+o, with zero vectors past the ends (the reference pads the audio features with zeros);
  ``mdist[o]`` = mean over i;
* LSE-D = min_o mdist[o]; LSE-C = median_o mdist - LSE-D; the AV offset = 15 - argmin.

The network is our own module with the published ``syncnet_v2.model`` layout, loaded as a plain state
dict with ``torch.load(weights_only=True)`` (never unpickling code).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import nn

from singer_core.errors import CheckpointError, InputError

SYNCNET_FILE = "evaluation/syncnet_v2.model"
FPS = 25
SAMPLE_RATE = 16000
CROP = 224
WINDOW = 5
MFCC_PER_FRAME = 4
VSHIFT = 15
BATCH = 20
JPEG_BIT_RATE = 200000  # ffmpeg's default for the mjpeg encoder when no quality is given


def _conv_bn(conv: nn.Module, channels: int, bn: type[nn.Module]) -> list[nn.Module]:
    return [conv, bn(channels), nn.ReLU()]


class SyncNet(nn.Module):
    """SyncNet v2: an audio tower on MFCC [B, 1, 13, 20] and a lip tower on BGR video [B, 3, 5, 224, 224],
    each ending in a 1024-d embedding. Layer indices match ``syncnet_v2.model``'s keys."""

    def __init__(self, embedding: int = 1024):
        super().__init__()
        c2, c3 = nn.Conv2d, nn.Conv3d
        bn2, bn3 = nn.BatchNorm2d, nn.BatchNorm3d
        self.netcnnaud = nn.Sequential(
            *_conv_bn(c2(1, 64, 3, padding=1), 64, bn2), nn.MaxPool2d(1, 1),
            *_conv_bn(c2(64, 192, 3, padding=1), 192, bn2), nn.MaxPool2d(3, (1, 2)),
            *_conv_bn(c2(192, 384, 3, padding=1), 384, bn2),
            *_conv_bn(c2(384, 256, 3, padding=1), 256, bn2),
            *_conv_bn(c2(256, 256, 3, padding=1), 256, bn2), nn.MaxPool2d(3, 2),
            *_conv_bn(c2(256, 512, (5, 4)), 512, bn2),
        )
        self.netfcaud = self._head(embedding)
        self.netfclip = self._head(embedding)
        self.netcnnlip = nn.Sequential(
            *_conv_bn(c3(3, 96, (5, 7, 7), stride=(1, 2, 2)), 96, bn3), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_conv_bn(c3(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), 256, bn3),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=(0, 1, 1)),
            *_conv_bn(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3),
            *_conv_bn(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3),
            *_conv_bn(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_conv_bn(c3(256, 512, (1, 6, 6)), 512, bn3),
        )

    @staticmethod
    def _head(embedding: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embedding))

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, video: torch.Tensor) -> torch.Tensor:
        return self.netfclip(self.netcnnlip(video).flatten(1))


def load_syncnet(path: str | Path, device: torch.device | str = "cpu") -> SyncNet:
    """Load ``syncnet_v2.model`` (a torch-saved state dict) without unpickling code; strict key check."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling refusal or corrupt file
        raise CheckpointError(f"Cannot read SyncNet weights '{path}' as a plain state dict ({error}). Use the "
                              "published syncnet_v2.model from joonson/syncnet_python.") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"'{path}' is not a state dict (found {type(state).__name__}).")
    net = SyncNet()
    expected = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    found = {k for k in state if not k.endswith("num_batches_tracked")}
    if expected != found:
        missing, unexpected = sorted(expected - found), sorted(found - expected)
        raise CheckpointError(f"'{path}' is not a SyncNet v2 state dict (missing {missing[:4]}, "
                              f"unexpected {unexpected[:4]}).")
    net.load_state_dict(state, strict=False)
    return net.eval().to(device)


def jpeg_round_trip(yuv_frames, width: int, height: int) -> np.ndarray:
    """[T, H, W, 3] BGR uint8: limited-range yuv420p ``av.VideoFrame``s through ffmpeg's ``-f image2`` JPEG path.

    The same libavcodec steps as ``ffmpeg -i VIDEO -f image2 %06d.jpg``: each frame converted to full range
    (swscale, bicubic flags) and encoded by the mjpeg encoder at its default 200 kb/s rate control (which
    depends on the frame order, hence one encoder per video); each JPEG decoded by OpenCV like ``cv2.imread``.
    """
    import av
    import cv2

    frames = []
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuv420p"
    encoder.color_range = 2  # JPEG (full) range
    encoder.time_base, encoder.framerate = Fraction(1, FPS), Fraction(FPS)
    encoder.bit_rate = JPEG_BIT_RATE
    encoder.thread_count = 1

    def decode(packets):
        for packet in packets:
            frames.append(cv2.imdecode(np.frombuffer(bytes(packet), np.uint8), cv2.IMREAD_COLOR))

    for index, frame in enumerate(yuv_frames):
        full = frame.reformat(format="yuv420p", src_color_range=1, dst_color_range=2, interpolation="BICUBIC")
        full.pts, full.time_base, full.color_range = index, Fraction(1, FPS), 2
        decode(encoder.encode(full))
    decode(encoder.encode(None))
    return np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)


def syncnet_frames(path: str | Path) -> np.ndarray:
    """[T, H, W, 3] BGR uint8 frames of a video file as syncnet_python sees them (:func:`jpeg_round_trip`)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = jpeg_round_trip(container.decode(stream), stream.codec_context.width, stream.codec_context.height)
    if not len(frames):
        raise InputError(f"Video '{path}' has no frames.")
    return frames


def _as_syncnet_input(crops_bgr: np.ndarray) -> np.ndarray:
    """Our crops through the reference's last steps: written as a yuv420p video (the reference writes XVID with
    OpenCV), then extracted as JPEGs. The lossy XVID compression itself is not reproduced."""
    import av

    def yuv():
        for crop in crops_bgr:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(crop[:, :, ::-1]), format="rgb24")
            yield frame.reformat(format="yuv420p", dst_color_range=1, interpolation="BICUBIC")

    return jpeg_round_trip(yuv(), CROP, CROP)


def syncnet_audio(path: str | Path) -> np.ndarray:
    """Mono 16 kHz int16 samples of a video's audio track (``ffmpeg -ac 1 -acodec pcm_s16le -ar 16000``)."""
    import av

    chunks = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise InputError(f"'{path}' has no audio track; lip-sync scores need the song in the video.")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(container.streams.audio[0]):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(chunks).astype(np.int16)


def mfcc(audio: np.ndarray) -> np.ndarray:
    """[13, N] MFCC of int16 16 kHz audio (python_speech_features defaults, as the reference)."""
    try:
        import python_speech_features
    except ImportError as error:
        raise InputError("LSE needs the python_speech_features package: pip install python_speech_features") \
            from error
    return np.asarray(python_speech_features.mfcc(audio, SAMPLE_RATE)).T


@dataclass(frozen=True)
class SyncScores:
    """LSE-D (min mean distance), LSE-C (median - min), the AV offset in frames, and the [windows, 31] distances."""

    lse_d: float
    lse_c: float
    offset: int
    distances: np.ndarray


@torch.no_grad()
def sync_scores(net: SyncNet, frames_bgr: np.ndarray, audio: np.ndarray, vshift: int = VSHIFT) -> SyncScores:
    """Scores of [T, 224, 224, 3] BGR uint8 face crops and their int16 16 kHz audio."""
    if frames_bgr.shape[1:] != (CROP, CROP, 3):
        raise InputError(f"SyncNet needs 224x224 face crops (got {frames_bgr.shape[2]}x{frames_bgr.shape[1]}); "
                         "without --face-crops the face is found and cropped first.")
    device = next(net.parameters()).device
    coefficients = torch.from_numpy(mfcc(audio)).float()
    windows = min(len(frames_bgr), len(audio) // (SAMPLE_RATE // FPS)) - WINDOW
    if windows < 1:
        raise InputError("the video is too short for lip-sync scores (needs more than 5 frames with audio).")
    video = torch.from_numpy(frames_bgr).permute(3, 0, 1, 2).float()  # [3, T, H, W]
    lip, aud = [], []
    for start in range(0, windows, BATCH):
        index = range(start, min(windows, start + BATCH))
        lip_in = torch.stack([video[:, i:i + WINDOW] for i in index]).to(device)
        aud_in = torch.stack([coefficients[None, :, i * MFCC_PER_FRAME:i * MFCC_PER_FRAME + 20] for i in index])
        lip.append(net.forward_lip(lip_in).cpu())
        aud.append(net.forward_aud(aud_in.to(device)).cpu())
    lip_feat, aud_feat = torch.cat(lip), torch.cat(aud)
    span = 2 * vshift + 1
    padded = torch.nn.functional.pad(aud_feat, (0, 0, vshift, vshift))
    shifted = padded.unfold(0, span, 1)[: len(lip_feat)].permute(0, 2, 1)  # [N, span, D]
    distances = torch.nn.functional.pairwise_distance(lip_feat[:, None, :].expand_as(shifted), shifted)
    mean = distances.mean(dim=0)
    minimum, argmin = torch.min(mean, 0)
    return SyncScores(lse_d=float(minimum), lse_c=float(torch.median(mean) - minimum),
                      offset=int(vshift - argmin), distances=distances.numpy())


# --- face crops from a full video (our detector in place of syncnet_python's S3FD pipeline) ---------------

CROP_SCALE = 0.40
SMOOTHING = 13
PAD_VALUE = 110


def face_crops(frames_rgb, models) -> np.ndarray:
    """[T, 224, 224, 3] BGR crops of the largest face, following syncnet_python's ``crop_video``.

    Boxes come from the pack's SCRFD detector (not S3FD) on every frame; frames without a detection take
    the box linearly interpolated between their neighbours (the reference's ``interp1d`` over a track).
    Then as the reference: half-size s = max(w, h) / 2 and the centre, each median-filtered over 13 frames
    (``scipy.signal.medfilt``); the frame padded by int(s * 1.8) with grey 110; the crop rows
    [cy - s, cy + 1.8 s), columns [cx - 1.4 s, cx + 1.4 s) (mouth-centred, crop_scale 0.4) resized to 224.
    """
    import cv2
    from scipy.signal import medfilt

    from singer_core.face.analysis import detect_faces

    frames, boxes = [], []
    for rgb in frames_rgb:
        frames.append(rgb)
        faces = detect_faces(models, rgb)
        boxes.append(faces[0].box.astype(np.float64) if faces else None)
    found = np.array([i for i, b in enumerate(boxes) if b is not None])
    if found.size == 0:
        raise InputError("no face was found in the video; pass --face-crops for videos that are already face crops.")
    known = np.stack([boxes[i] for i in found])
    index = np.arange(len(frames))
    box = np.stack([np.interp(index, found, known[:, j]) for j in range(4)], axis=1)
    # The reference only sees tracks of 100+ frames; a shorter clip gets the largest odd kernel that fits,
    # since medfilt zero-pads and a 13-kernel over fewer frames would return zeros.
    kernel = min(SMOOTHING, len(frames) - (1 - len(frames) % 2))
    half = medfilt(np.maximum(box[:, 3] - box[:, 1], box[:, 2] - box[:, 0]) / 2, kernel_size=kernel)
    cy = medfilt((box[:, 1] + box[:, 3]) / 2, kernel_size=kernel)
    cx = medfilt((box[:, 0] + box[:, 2]) / 2, kernel_size=kernel)
    crops = []
    for t, rgb in enumerate(frames):
        s = half[t]
        pad = int(s * (1 + 2 * CROP_SCALE))
        padded = np.pad(rgb[:, :, ::-1], ((pad, pad), (pad, pad), (0, 0)), constant_values=PAD_VALUE)
        my, mx = cy[t] + pad, cx[t] + pad
        face = padded[int(my - s):int(my + s * (1 + 2 * CROP_SCALE)),
                      int(mx - s * (1 + CROP_SCALE)):int(mx + s * (1 + CROP_SCALE))]
        crops.append(cv2.resize(face, (CROP, CROP)))
    return np.stack(crops)


def video_sync_scores(net: SyncNet, path: str | Path, face_models=None) -> SyncScores:
    """LSE of one video file: as-is 224 crops (``face_models`` None) or cropped with our detector first
    (then through the reference's yuv420p + JPEG steps, see :func:`_as_syncnet_input`)."""
    from .media import iter_frames, video_fps

    fps = video_fps(path)
    if abs(fps - FPS) > 0.01:
        raise InputError(f"LSE is defined at 25 fps; '{Path(path).name}' runs at {fps:g} fps. Re-encode it at 25 fps.")
    if face_models is None:
        frames = syncnet_frames(path)
    else:
        frames = _as_syncnet_input(face_crops(iter_frames(path), face_models))
    return sync_scores(net, frames, syncnet_audio(path))
