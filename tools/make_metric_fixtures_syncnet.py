"""Golden data for LSE-D / LSE-C from the real syncnet_python code (joonson/syncnet_python), random weights.

Needs a checkout of syncnet_python, an ``ffmpeg`` binary on PATH (its evaluate() shells out to it) and torch,
python_speech_features, scipy and OpenCV. A throwaway venv that borrows the pack venv's packages works:

    python3 -m venv /tmp/metrics-sync
    echo /work/main/.venv/lib/python3.11/site-packages > /tmp/metrics-sync/lib/python3.11/site-packages/main.pth
    /tmp/metrics-sync/bin/pip install imageio-ffmpeg        # a static ffmpeg binary
    mkdir -p /tmp/metrics-sync/ffmpeg && ln -s "$(/tmp/metrics-sync/bin/python -c \
        'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')" /tmp/metrics-sync/ffmpeg/ffmpeg
    PATH=/tmp/metrics-sync/ffmpeg:$PATH /tmp/metrics-sync/bin/python tools/make_metric_fixtures_syncnet.py \
        /path/to/syncnet_python

Steps: write a 40-frame 224x224 "face crop" video with 1.6 s of the song (tests/data 0001.png/0001.wav,
the pack's own writer: H.264 + AAC); make random weights with tests/tiny_models/syncnet_weights.py from the
*reference* model's key names and shapes, save them with torch.save like syncnet_v2.model, load them with the
reference's loadParameters, and run SyncNetInstance.evaluate (vshift 15, batch 20, as the LSE scripts of
Wav2Lip). The reference hard-codes .cuda(); on this CPU-only run Module.cuda/Tensor.cuda return the object
unchanged (nothing else is patched). Writes tests/fixtures/metrics/syncnet_crops.mp4 and syncnet.json.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from argparse import Namespace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "tests" / "fixtures" / "metrics"
FRAMES = 40


def crop_video(path: Path) -> None:
    import cv2

    from singer_core.audio.waveform import load_waveform
    from singer_core.video_io import write_video

    photo = cv2.cvtColor(cv2.imread(str(ROOT / "tests" / "data" / "0001.png")), cv2.COLOR_BGR2RGB)
    h, w = photo.shape[:2]
    frames = []
    for t in range(FRAMES):  # a slowly drifting, slightly zooming crop around the face
        size = int(0.45 * w * (1 + 0.05 * np.sin(t / 6)))
        cx, cy = int(0.51 * w + 6 * np.sin(t / 4)), int(0.52 * h + 4 * np.cos(t / 5))
        crop = photo[cy - size // 2: cy + size // 2, cx - size // 2: cx + size // 2]
        frames.append(cv2.resize(crop, (224, 224), interpolation=cv2.INTER_AREA))
    song = load_waveform(ROOT / "tests" / "data" / "0001.wav", 16000)[None, 4800: 4800 + FRAMES * 640]
    write_video(path, torch.from_numpy(np.stack(frames)).float() / 255, 25, song, 16000, crf=23)


def main(syncnet_python: Path) -> None:
    from tests.tiny_models.syncnet_weights import random_syncnet_state

    sys.path.insert(0, str(syncnet_python))
    torch.nn.Module.cuda = lambda self, *a, **k: self  # CPU run of the reference's hard-coded .cuda()
    torch.Tensor.cuda = lambda self, *a, **k: self
    from SyncNetInstance import SyncNetInstance

    OUT.mkdir(parents=True, exist_ok=True)
    video = OUT / "syncnet_crops.mp4"
    crop_video(video)
    work = Path(tempfile.mkdtemp(prefix="metrics-syncnet-"))
    try:
        instance = SyncNetInstance()
        state = random_syncnet_state({k: v.shape for k, v in instance.__S__.state_dict().items()})
        torch.save(state, work / "syncnet_random.model")
        instance.loadParameters(str(work / "syncnet_random.model"))
        opt = Namespace(tmp_dir=str(work / "tmp"), reference="golden", batch_size=20, vshift=15)
        offset, conf, dists = instance.evaluate(opt, videofile=str(video))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mdist = dists.mean(axis=0)
    golden = {
        "source": "joonson/syncnet_python SyncNetInstance.evaluate, random weights "
                  "(tests/tiny_models/syncnet_weights.py seed 0), vshift 15, batch 20",
        "weights_checksum": float(sum(v.double().sum() for v in state.values())),
        "offset": int(offset), "lse_c": float(conf), "lse_d": float(mdist.min()),
        "distances": dists.astype(float).round(7).tolist(),
    }
    (OUT / "syncnet.json").write_text(json.dumps(golden))
    print({k: golden[k] for k in ("offset", "lse_d", "lse_c", "weights_checksum")}, dists.shape)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
