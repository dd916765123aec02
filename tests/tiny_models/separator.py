"""Tiny MDX-Net-style ONNX models: Kim_Vocal_2's input/output signature with a trivial graph.

The real model maps ``input [batch, 4, 3072, 256]`` (real/imag spectrogram of a stereo chunk) to the vocal
spectrogram of the same layout. These stand-ins keep the signature (``dim_t`` can be made small so tests see
several overlapping chunks) and compute either the identity or a fixed per-frequency-bin mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def write_tiny_mdx_onnx(path: str | Path, dim_f: int = 3072, dim_t: int = 256, mask: np.ndarray | None = None,
                        channel_gains: tuple[float, float, float, float] | None = None,
                        dynamic_batch: bool = True) -> Path:
    """Identity, or ``output = input * channel_gains[c] * mask[bin]`` (either factor may be left out).

    ``channel_gains`` follow the MDX layout (left real, left imag, right real, right imag).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = "batch" if dynamic_batch else 1
    model_input = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 4, dim_f, dim_t])
    model_output = helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, 4, dim_f, dim_t])
    if mask is None and channel_gains is None:
        nodes, initializers = [helper.make_node("Identity", ["input"], ["output"])], []
    else:
        weights = np.ones((1, 4, dim_f, 1), np.float32)
        if mask is not None:
            weights = weights * np.asarray(mask, np.float32).reshape(1, 1, dim_f, 1)
        if channel_gains is not None:
            weights = weights * np.asarray(channel_gains, np.float32).reshape(1, 4, 1, 1)
        initializers = [numpy_helper.from_array(weights.astype(np.float32), "weights")]
        nodes = [helper.make_node("Mul", ["input", "weights"], ["output"])]
    graph = helper.make_graph(nodes, "tiny_mdx", [model_input], [model_output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="singer-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def lowpass_mask(cutoff_hz: float, n_fft: int = 7680, sample_rate: int = 44100, dim_f: int = 3072) -> np.ndarray:
    """1 for bins below ``cutoff_hz``, 0 above: a stand-in 'vocal' model that keeps only low frequencies."""
    freqs = np.arange(dim_f) * sample_rate / n_fft
    return (freqs < cutoff_hz).astype(np.float32)
