"""Test-only custom nodes (copied into the test server's custom_nodes by tests/host/conftest.py, never shipped).

``SingerTestVideoCalls`` makes, on a real VIDEO, the calls ComfyUI 0.38.1's video nodes make (the plan, written by
tests/host/test_video_contract.py from the facts it records, says which), so the VIDEO of 'SINGER Decode to Video'
is held to the newest interface inside a real server even where the host is older. ``SingerTestVideoMemory``
measures the peak resident memory of saving a long synthetic SINGER VIDEO, plain and edited.
"""

import json
import os
import sys
from fractions import Fraction
from functools import partial

import folder_paths
import torch

PLAN_DEFAULT = "{}"


def _pack():
    """This pack's video module, as ComfyUI loaded it (custom_nodes/singer_comfyui; the module's name depends on
    the ComfyUI version)."""
    found = [m for name, m in list(sys.modules.items()) if name.endswith("nodes.video") and hasattr(m, "LatentVideo")]
    if not found:
        raise RuntimeError("the SINGER pack's nodes.video module is not loaded")
    return found[0]


def _save(video, name: str, call: dict) -> dict:
    """``video.save_to(path, **keywords)`` into output/contract/<name>; what was asked and where it went."""
    folder = os.path.join(folder_paths.get_output_directory(), "contract")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    video.save_to(path, **call)
    return {"file": path, **{key: value for key, value in call.items() if key != "metadata"}}


def _edited(video, edit: dict):
    kind, args = edit["kind"], edit["args"]
    if kind == "trim":
        return video.as_trimmed(*args)
    if kind == "crop":
        return video.as_cropped(*args)
    return video.as_resized(*args)


def _describe(video) -> dict:
    return {
        "type": type(video).__name__,
        "dimensions": list(video.get_dimensions()),
        "frame_count": video.get_frame_count(),
        "frame_rate": str(video.get_frame_rate()),
        "duration": video.get_duration(),
        "bit_depth": video.get_bit_depth(),
        "color_space": video.get_color_space() if hasattr(video, "get_color_space") else None,
    }


class SingerTestVideoCalls:
    """Runs a plan of 0.38.1 calls on a VIDEO: saves, edits then saves, components; reports as UI output."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("VIDEO",), "plan": ("STRING", {"default": PLAN_DEFAULT, "multiline": True})}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "singer_test"

    def run(self, video, plan):
        plan = json.loads(plan)
        report = {"video": _describe(video), "saves": [], "edits": []}
        for index, call in enumerate(plan.get("saves", [])):
            report["saves"].append(_save(video, f"save_{index}.{call.pop('extension')}", call))
        for index, edit in enumerate(plan.get("edits", [])):
            edited = _edited(video, edit)
            entry = {"edit": edit, "result": None if edited is None else _describe(edited)}
            if edited is not None and "save" in edit:
                call = dict(edit["save"])
                entry["save"] = _save(edited, f"edit_{index}.{call.pop('extension')}", call)
            report["edits"].append(entry)
        if plan.get("components"):
            components = video.get_components()
            audio = components.audio
            report["components"] = {
                "images": list(components.images.shape),
                "frame_rate": str(components.frame_rate),
                "audio": None if audio is None else [list(audio["waveform"].shape), audio["sample_rate"]],
            }
        return {"ui": {"report": [json.dumps(report)]}}


def _resident_peak_mb(action) -> float:
    """Peak resident memory while ``action`` runs, above the resident memory when it starts (Linux: the peak is
    reset through /proc/self/clear_refs, then read as VmHWM)."""

    def status(field: str) -> int:
        with open("/proc/self/status") as lines:
            return next(int(line.split()[1]) for line in lines if line.startswith(field))

    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = status("VmRSS:")
    action()
    return (status("VmHWM:") - before) / 1024


def _synthetic_batches(width: int, height: int, start: int, stop: int):
    """Frames [start, stop) of a moving gradient, 8 at a time (stands in for the VAE: same shapes and dtype)."""
    ramp = torch.linspace(0, 1, width).expand(height, width)
    for first in range(start, stop, 8):
        count = min(8, stop - first)
        phase = torch.arange(first, first + count, dtype=torch.float32)[:, None, None] / 50
        yield ((ramp[None] + phase) % 1)[..., None].expand(count, height, width, 3).contiguous()


class SingerTestVideoMemory:
    """Peak resident memory (MB) of saving a long synthetic LatentVideo, plain and trimmed/cropped/resized,
    against holding its frames (get_components)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"frames": ("INT", {"default": 600, "min": 8, "max": 100000}),
                             "size": ("INT", {"default": 256, "min": 64, "max": 2048})}}  # fmt: skip

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "singer_test"

    def run(self, frames, size):
        pack = _pack()
        source = pack.FrameSource(batches=partial(_synthetic_batches, size, size), frame_count=frames,
                                  output_size=(size, size), rate=Fraction(25))  # fmt: skip
        video = pack.LatentVideo(source)
        folder = folder_paths.get_temp_directory()
        os.makedirs(folder, exist_ok=True)
        fast = {"crf": 30.0, "preset": "ultrafast"}
        cases = {
            "save": lambda: video.save_to(os.path.join(folder, "memory_save.mp4"), **fast),
            "trimmed": lambda: video.as_trimmed(1.0, 0.0).save_to(os.path.join(folder, "memory_trim.mp4"), **fast),
            "cropped": lambda: video.as_cropped(16, 16, size // 2, size // 2).save_to(
                os.path.join(folder, "memory_crop.mp4"), **fast),
            "resized": lambda: video.as_resized(size // 2, size // 2, "bilinear").save_to(
                os.path.join(folder, "memory_resize.mp4"), **fast),
            "components": lambda: video.as_trimmed(1.0, 0.0).get_components(),
        }
        peaks = {name: _resident_peak_mb(action) for name, action in cases.items()}
        whole_mb = frames * size * size * 3 * 4 / 2**20
        return {"ui": {"report": [json.dumps({"peaks_mb": peaks, "frames_mb": whole_mb})]}}


NODE_CLASS_MAPPINGS = {"SingerTestVideoCalls": SingerTestVideoCalls, "SingerTestVideoMemory": SingerTestVideoMemory}
