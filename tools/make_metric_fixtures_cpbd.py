"""Golden data for CPBD from the reference ``cpbd`` package (PyPI 1.0.7, Narvekar & Karam's method).

Run in a throwaway venv, never in the pack's environment:

    python3 -m venv /tmp/metrics-cpbd
    /tmp/metrics-cpbd/bin/pip install numpy==2.4.6 scipy==1.17.1 scikit-image==0.26.0 opencv-python-headless
    /tmp/metrics-cpbd/bin/pip install --no-deps cpbd==1.0.7
    /tmp/metrics-cpbd/bin/python tools/make_metric_fixtures_cpbd.py

(scikit-image/scipy pinned to the pack's versions: the package calls their canny/convolve.) cpbd 1.0.7 imports
``scipy.ndimage.imread`` at module level for its command line only; that function left SciPy years ago, so a
placeholder is set before the import (compute() does not use it). Writes tests/fixtures/metrics/cpbd.npz
(grey uint8 test images, and the package's edge widths of two of them) and cpbd.json (the package's value for each).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import scipy.ndimage

scipy.ndimage.imread = None  # see the docstring: unused by compute(), removed from SciPy
import cpbd  # noqa: E402
from cpbd.octave import sobel  # noqa: E402

compute_module = __import__("sys").modules["cpbd.compute"]  # the package re-exports compute() over its module

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "metrics"


def images() -> dict[str, np.ndarray]:
    photo = cv2.imread(str(ROOT / "tests" / "data" / "0001.png"), cv2.IMREAD_GRAYSCALE)
    face = cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    x = np.arange(400, dtype=np.float64)
    ramps = np.tile(np.where(x < 150, 40 + x, np.where(x < 160, 250 - 10 * (x - 150), 60 + (x - 160) * 0.5)),
                    (128, 1))
    stripes = 120 + 20 * np.sin(np.arange(128) / 3.0)[None, :].repeat(192, axis=0)
    return {
        "face_sharp": face,
        "face_blur2": cv2.GaussianBlur(face, (0, 0), 2.0),
        "face_odd_size": cv2.GaussianBlur(cv2.resize(photo, (330, 200), interpolation=cv2.INTER_AREA), (0, 0), 1.0),
        "noise": rng.integers(0, 256, size=(128, 128)).astype(np.uint8),
        "constant": np.full((128, 128), 128, np.uint8),
        "low_contrast_stripes": np.round(stripes).astype(np.uint8),
        "long_ramps": np.clip(np.round(ramps + rng.normal(0, 1, ramps.shape)), 0, 255).astype(np.uint8),
        # One slow falling edge: the walk to its left is longer than the package's 101-pixel cap.
        "edge_wider_than_cap": np.tile(np.concatenate([250 - np.arange(110), [120], 100 - np.arange(95),
                                                        5 + np.arange(20) * 10]), (128, 1)).astype(np.uint8),
        "checker": (np.kron((np.indices((8, 8)).sum(0) % 2), np.ones((16, 16))) * 200 + 20).astype(np.uint8),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    data = images()
    # Intermediate check: the package's Marziliano edge widths (uint8: widths are <= 2 * 101).
    widths = {f"widths_{name}": compute_module.marziliano_method(sobel(data[name].astype(np.float64)),
                                                                   data[name].astype(np.float64)).astype(np.uint8)
              for name in ("face_sharp", "edge_wider_than_cap")}
    np.savez_compressed(OUT / "cpbd.npz", **data, **widths)
    values = {name: float(cpbd.compute(image)) for name, image in data.items()}
    (OUT / "cpbd.json").write_text(json.dumps({"source": "cpbd 1.0.7 (PyPI) compute()", "values": values}, indent=2))
    print(json.dumps(values, indent=2))


if __name__ == "__main__":
    main()
