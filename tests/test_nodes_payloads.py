"""ONNX sessions of the nodes: kept on the CPU, created per use and released on CUDA (no ComfyUI needed)."""

from __future__ import annotations

import gc
import weakref

import pytest

from nodes.payloads import FaceAnalyzer, VocalSeparator


class Session:
    """Stands for an onnxruntime session (weakly referenceable, so its release can be seen)."""


@pytest.fixture
def loads(monkeypatch):
    made = []  # weak references only: the payload alone decides how long a session lives

    def load(self):
        session = Session()
        made.append(weakref.ref(session))
        return session

    monkeypatch.setattr(FaceAnalyzer, "_load", load)
    monkeypatch.setattr(VocalSeparator, "_load", load)
    return made


def test_cpu_sessions_are_loaded_once_and_kept(tmp_path, loads):
    analyzer = FaceAnalyzer(directory=tmp_path, providers=["CPUExecutionProvider"])
    with analyzer.session() as first:
        pass
    with analyzer.session() as second:
        assert second is first and loads[0]() is first
    assert len(loads) == 1


@pytest.mark.parametrize("kind", ["face", "separator"])
def test_cuda_sessions_are_released_when_the_work_ends(tmp_path, loads, kind):
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    payload = (FaceAnalyzer(directory=tmp_path, providers=providers) if kind == "face"
               else VocalSeparator(source_path=str(tmp_path / "m.onnx"), providers=providers))
    with payload.session() as session:
        alive = weakref.ref(session)
        del session
    gc.collect()
    assert alive() is None and payload._kept is None
    with payload.session():
        pass
    assert len(loads) == 2  # a new session for the next use
