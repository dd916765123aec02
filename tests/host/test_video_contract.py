"""The VIDEO of 'SINGER Decode to Video' held to ComfyUI 0.38.1's video interface, which cannot be installed here.

0.38.1's facts are recorded below as data, each with the file and the commit its 0.38.1 text was read from
(github.com/Comfy-Org/ComfyUI, the v0.38.1 tree 20ca544e; the commit given per file is the one its stored
version comes from). They are checked two ways: in plain Python, our class against the interface (abstract
methods, every ``save_to`` keyword, the edits' signatures); and in a real ComfyUI server, a test-only node
(tests/host/video_contract_node.py) makes on the real VIDEO exactly the calls 0.38.1's Save Video, preview,
Trim/Crop Video and Get Video Components make, and the files are read back. The host's own Save Video runs
with every container/codec it offers, its trim node where it has one, and Get Video Components. A last test
measures the resident memory of saving a long VIDEO, plain and edited (docs/comfyui_compat.md).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from fractions import Fraction

import av
import pytest

from tests.host.harness import REPO_ROOT, load_comfy_host
from tests.host.test_singer_decode_video import REPLACED, _output_slot
from tests.host.test_singer_workflow import FPS, SIZE, _fast_workflow, _id, _saved_video, _song_seconds

pytestmark = pytest.mark.host

# ---------------------------------------------------------------------------------------------- 0.38.1's facts
COMFYUI_0381 = "20ca544ee0436721d8eb5f544665e490609f72c8"  # comfyui_version.py / pyproject.toml: "0.38.1"
VIDEO_INPUT = ("comfy_api/latest/_input/video_types.py", "df63641786f497f181b847d5893c3788223f3180")
VIDEO_UTIL = ("comfy_api/latest/_util/video_types.py", "df63641786f497f181b847d5893c3788223f3180")
VIDEO_IMPL = ("comfy_api/latest/_input_impl/video_types.py", "0c6cfff61c0a77fa004b5a96df082c594401990a")
VIDEO_NODES = ("comfy_extras/nodes_video.py", "39b885faf94458563e272c4881fa369717567462")

# VIDEO_INPUT: VideoInput's abstract methods, and its other methods (defaults that decode the whole video
# through get_components(), or that a subclass must answer itself).
ABSTRACT_METHODS = ("get_components", "save_to", "as_trimmed")
DEFAULT_METHODS = ("get_color_space", "as_cropped", "as_resized", "get_stream_source", "has_pending_frame_edits",
                   "get_active_trim_window", "get_dimensions", "get_display_dimensions", "get_bit_depth",
                   "get_duration", "get_frame_count", "get_frame_rate", "get_container_format")  # fmt: skip
SAVE_TO_KEYWORDS = ("format", "codec", "metadata", "bit_depth", "crf", "color_space", "preset")
EDIT_CALLS = {  # how 0.38.1 calls the edits (VIDEO_NODES: VideoSlice/VideoTrim, VideoCrop; VIDEO_INPUT: as_resized)
    "as_trimmed": ((1.0, 0.5), {"strict_duration": False}),
    "as_cropped": ((0, 0, 16, 16), {}),
    "as_resized": ((32, 32, "bilinear"), {"crop": "disabled", "post_crop": (0, 0, 16, 16)}),
}
# VIDEO_UTIL: the enums; VIDEO_IMPL: the colour spaces (VIDEO_COLOR_TRANSFERS), webm's audio.
CONTAINERS = ("auto", "mp4", "mkv", "webm")
CODECS = ("auto", "h264", "av1")
COLOR_SPACES = ("sRGB", "HDR", "HDR PQ")
WEBM_AUDIO = ("opus", 48000)
# VIDEO_NODES, SaveVideo: format -> codecs offered; "re-encode" crf (default, min, max) per codec; format "auto"
# becomes webm for AV1, else mp4; save_to(path, format=, codec=, metadata=, crf=).
SAVE_VIDEO_CODECS = {"auto": ("auto", "h264", "av1"), "mp4": ("auto", "h264", "av1"),
                     "mkv": ("auto", "h264", "av1"), "webm": ("auto", "av1")}  # fmt: skip
SAVE_VIDEO_CRF = {"h264": (23.0, 0.0, 51.0), "av1": (30.0, 0.0, 63.0)}
EXTENSIONS = {"mp4": "mp4", "mkv": "mkv", "webm": "webm"}
# VIDEO_NODES, save_video_preview (the preview of LoadVideo/VideoTrim/VideoCrop): save_to(path, format=MP4,
# codec="auto", preset="ultrafast").
PREVIEW_CALL = {"format": "mp4", "codec": "auto", "preset": "ultrafast"}
# VIDEO_UTIL normalize_crop_rect: (x, y, width, height, source width, source height) -> rectangle or None.
CROP_RULE = [((3, 1, 11, 9, 32, 24), (2, 0, 10, 8)), ((0, 0, 32, 24, 32, 24), None), ((0, 0, 0, 5, 32, 24), None),
             ((31, 23, 8, 8, 32, 24), (30, 22, 2, 2)), ((-4, 5, 40, 40, 32, 24), (0, 4, 32, 20))]  # fmt: skip


def _saved_video_name(format_name: str, codec: str) -> tuple[str, str]:
    """SaveVideo 0.38.1: the container a (format, codec) choice writes, and the file's extension."""
    container = ("webm" if codec == "av1" else "mp4") if format_name == "auto" else format_name
    return container, EXTENSIONS[container]


# ------------------------------------------------------------------------------------------- plain Python
PLAIN_CHECK = textwrap.dedent(
    """
    import importlib.util, inspect, json, sys, abc, io
    from pathlib import Path
    from fractions import Fraction
    facts = json.loads(sys.argv[2])
    from comfy.cli_args import args
    args.cpu = True  # as the test server runs (--cpu); ComfyUI picks its device when model_management is imported
    spec = importlib.util.spec_from_file_location("singer_pack", Path(sys.argv[1]) / "__init__.py",
                                                  submodule_search_locations=[sys.argv[1]])
    pack = importlib.util.module_from_spec(spec); sys.modules["singer_pack"] = pack; spec.loader.exec_module(pack)
    pack._make_library_importable()
    from singer_pack.nodes import video
    from comfy_api.latest import Input
    import torch
    cls = video.LatentVideo
    own = lambda name: any(name in k.__dict__ for k in cls.__mro__[: cls.__mro__.index(Input.Video)])
    report = {"missing": [n for n in facts["methods"] if not own(n)], "unbindable": {}}
    def batches(start, stop):  # frame i is the grey i / 100
        for first in range(start, stop, 4):
            index = torch.arange(first, min(first + 4, stop), dtype=torch.float32)
            yield (index / 100)[:, None, None, None].expand(-1, 32, 32, 3).contiguous()
    source = video.FrameSource(batches=batches, frame_count=50, output_size=(32, 32), rate=Fraction(25))
    clip = cls(source)
    trimmed = clip.as_trimmed(0.5, 1.0).as_trimmed(0.2, 0.0)
    report["trimmed_frames"] = [round(float(v) * 100) for v in trimmed.get_components().images[:, 0, 0, 0]]
    def pad(batch):  # a frame transform that changes the size (as pasting into a larger photo does)
        return torch.nn.functional.pad(batch.movedim(-1, 1), (8, 8, 4, 4)).movedim(1, -1)
    framed = video.FrameSource(batches=batches, frame_count=50, output_size=(48, 40), rate=Fraction(25),
                               frame_transform=pad)
    buffer = io.BytesIO()
    cls(framed).as_cropped(0, 0, 40, 40).save_to(buffer, format="mkv")
    buffer.seek(0)
    import av
    with av.open(buffer) as opened:
        stream = opened.streams.video[0]
        report["transformed"] = [stream.codec_context.width, stream.codec_context.height,
                                 sum(1 for _ in opened.decode(video=0))]
    try:
        cls(video.FrameSource(batches=batches, frame_count=50, output_size=(32, 32), rate=Fraction(25),
                              frame_transform=pad)).save_to(io.BytesIO(), format="mp4")
        report["wrong_size"] = "saved"
    except Exception as error:
        report["wrong_size"] = type(error).__name__
    calls = {"save_to": ((io.BytesIO(),), {k: None for k in facts["save_to"]}), **facts["edits"]}
    for name, (args, kwargs) in calls.items():
        try:
            inspect.signature(getattr(clip, name)).bind(*args, **kwargs)
        except TypeError as error:
            report["unbindable"][name] = str(error)
    report["crop_rule"] = [list(video.normalize_crop_rect(*a) or []) for a, _ in facts["crop_rule"]]
    try:
        clip.save_to(io.BytesIO(), format="mp4", color_space="HDR")
        report["hdr"] = "saved"
    except Exception as error:
        report["hdr"] = type(error).__name__ + ": " + str(error)
    class Newer(Input.Video):  # an interface with one more abstract method than this pack knows
        @abc.abstractmethod
        def as_flipped(self): ...
    newer = video._complete_interface(type("NewerLatentVideo", (cls, Newer), {}))
    report["newer_abstract"] = sorted(newer.__abstractmethods__)
    report["newer_delegates"] = newer(source).as_flipped.__doc__
    print(json.dumps(report))
    """
)


def test_our_video_class_implements_the_0381_interface():
    """Plain Python in the host's ComfyUI: every 0.38.1 method is our own (no whole-video default), every
    save_to keyword and edit call binds, sRGB-only, the crop rule, a newer abstract method is delegated; trims
    compose, and a frame_transform with its output size is what is saved (a wrong declared size is refused)."""
    comfy_dir = load_comfy_host().install()
    facts = {"methods": [*ABSTRACT_METHODS, *DEFAULT_METHODS], "save_to": SAVE_TO_KEYWORDS,
             "edits": {k: [list(a), kw] for k, (a, kw) in EDIT_CALLS.items()}, "crop_rule": CROP_RULE}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", PLAIN_CHECK, str(REPO_ROOT), json.dumps(facts)], cwd=comfy_dir,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["missing"] == [], f"inherited from VideoInput (would decode the whole video): {report['missing']}"
    assert report["unbindable"] == {}
    assert report["crop_rule"] == [list(expected or []) for _, expected in CROP_RULE]
    assert report["hdr"].startswith("InputError") and "sRGB" in report["hdr"]
    assert report["newer_abstract"] == [] and "VideoFromFile.as_flipped" in report["newer_delegates"]
    assert report["trimmed_frames"] == list(range(18, 38))  # [0.5 s, 1.5 s) then from 0.2 s on: frames 18..37
    assert report["transformed"] == [40, 40, 50] and report["wrong_size"] == "InputError"


# ------------------------------------------------------------------------------------------ in the server
def _to_decode_video(comfy_server, singer_models) -> tuple[dict, list]:
    """The shipped workflow up to the sampler, then 'SINGER Decode to Video' with the song; the VIDEO link."""
    prompt = _fast_workflow(comfy_server, singer_models, steps=1)
    for node_id in [k for k, v in prompt.items() if v["class_type"] in REPLACED]:
        del prompt[node_id]
    sampler, vae, song = _id(prompt, "SingerSampler"), _id(prompt, "VAELoader"), _id(prompt, "LoadAudio")
    prompt["900"] = {"class_type": "SingerDecodeVideo", "inputs": {
        "vae": [vae, 0], "latent": [sampler, _output_slot(comfy_server, "SingerSampler", "latent")],
        "fps": [sampler, _output_slot(comfy_server, "SingerSampler", "fps")], "audio": [song, 0],
        "batch_size": 8, "tiled": False, "tile_size": 512}}  # fmt: skip
    for node in prompt.values():  # nothing left depends on what was removed
        assert all(not isinstance(v, list) or v[0] in prompt for v in node["inputs"].values()), node
    return prompt, ["900", 0]


def _plan() -> dict:
    """0.38.1's calls: Save Video with every format/codec ("auto" encoding, and "re-encode" at each codec's
    default crf), the preview, 10-bit sRGB, trim/crop/resize then save with crf and preset, components."""
    saves = []
    for format_name, codecs in SAVE_VIDEO_CODECS.items():
        for codec in codecs:
            container, extension = _saved_video_name(format_name, codec)
            saves.append({"format": container, "codec": codec, "metadata": {"prompt": {"1": "x"}}, "crf": None,
                          "extension": extension})  # fmt: skip
            if codec != "auto" and format_name != "auto":
                saves.append({"format": container, "codec": codec, "crf": SAVE_VIDEO_CRF[codec][0],
                              "extension": extension})  # fmt: skip
    saves.append({**PREVIEW_CALL, "extension": "mp4"})
    saves.append({"format": "mkv", "codec": "h264", "bit_depth": 10, "color_space": "sRGB", "crf": 18.0,
                  "preset": "fast", "extension": "mkv"})  # fmt: skip
    fast = {"format": "mp4", "codec": "h264", "crf": 30.0, "preset": "ultrafast", "extension": "mp4"}
    edits = [
        {"kind": "trim", "args": [0.5, 1.0, False], "save": fast},
        {"kind": "trim", "args": [-0.5, 0.0, False], "save": {**fast, "format": "webm", "codec": "av1",
                                                              "extension": "webm"}},  # fmt: skip
        {"kind": "trim", "args": [0.5, 100.0, True]},
        {"kind": "trim", "args": [100.0, 0.0, False]},
        {"kind": "crop", "args": [2, 2, 40, 30], "save": fast},
        {"kind": "resize", "args": [48, 32, "bilinear"], "save": fast},
    ]
    return {"saves": saves, "edits": edits, "components": True}


def _opened(path: str) -> dict:
    """What a saved file holds: container, codecs, pixel format, size, decoded frames, transfer tag, and the
    audio's codec, rate and decoded seconds (matroska streams carry no duration)."""
    with av.open(path) as container:
        video = container.streams.video[0]
        context = video.codec_context
        facts = {"format": container.format.name, "codec": context.codec.name, "pix_fmt": context.pix_fmt,
                 "size": (context.width, context.height), "trc": int(context.color_trc),
                 "frames": sum(1 for _ in container.decode(video=0)), "audio": None}  # fmt: skip
    with av.open(path) as container:
        if container.streams.audio:
            audio = container.streams.audio[0]
            samples = sum(frame.samples for frame in container.decode(audio=0))
            facts["audio"] = (audio.codec_context.name, audio.sample_rate, samples / audio.sample_rate)
    return facts


def _x264_settings(path: str) -> bytes:
    """x264's settings string, which it writes into the stream (e.g. b'... crf=23.0 ...')."""
    data = open(path, "rb").read()
    start = data.find(b"x264 - core")
    return data[start : data.find(b"\x00", start)] if start >= 0 else b""


def test_video_meets_the_0381_calls_in_a_real_server(comfy_server, singer_models, input_dir, run_prompt):
    prompt, video = _to_decode_video(comfy_server, singer_models)
    prompt["901"] = {"class_type": "SingerTestVideoCalls", "inputs": {"video": video, "plan": json.dumps(_plan())}}
    outcome = run_prompt(prompt, timeout=600)
    assert outcome.status == "success", outcome.error
    report = json.loads(outcome.outputs["901"]["report"][0])
    frames = report["video"]["frame_count"]
    assert abs(frames - _song_seconds(input_dir / "0001.wav") * FPS) <= 1
    assert report["video"]["dimensions"] == [SIZE, SIZE] and report["video"]["frame_rate"] == str(FPS)
    assert (report["video"]["bit_depth"], report["video"]["color_space"]) == (8, "sRGB")

    for save in report["saves"]:
        facts = _opened(save["file"])
        container, codec = save["format"], save["codec"]
        codec = "av1" if codec == "auto" and container == "webm" else "h264" if codec == "auto" else codec
        assert facts["frames"] == frames and facts["size"] == (SIZE, SIZE), save
        assert {"mp4": "mp4", "mkv": "matroska", "webm": "webm"}[container] in facts["format"], save
        assert save["file"].endswith("." + container)
        assert ("av1" in facts["codec"] or "dav1d" in facts["codec"]) == (codec == "av1"), (save, facts)
        name, rate, seconds = facts["audio"]
        assert (name, rate) == WEBM_AUDIO if container == "webm" else name == "aac", (save, facts)
        assert abs(seconds - frames / FPS) < 0.1, (save, facts)  # the song, cut to the video
        if codec == "h264":
            settings = _x264_settings(save["file"])
            crf = save.get("crf")
            assert f"crf={18.0 if crf is None else crf:.1f}".encode() in settings, (save, settings[:200])
            assert (b"cabac=0" in settings) == (save.get("preset") == "ultrafast"), save
        ten_bit = save.get("bit_depth") == 10
        assert facts["pix_fmt"] == ("yuv420p10le" if ten_bit else "yuv420p"), (save, facts)
        assert facts["trc"] == (13 if save.get("color_space") == "sRGB" else 2), (save, facts)  # IEC 61966-2-1

    trim, from_end, too_long, past_end, crop, resize = report["edits"]
    assert trim["result"]["frame_count"] == 25 and _opened(trim["save"]["file"])["frames"] == 25
    assert abs(_opened(trim["save"]["file"])["audio"][2] - 1.0) < 0.1
    kept = frames - math.ceil((Fraction(frames, FPS) - Fraction(1, 2)) * FPS)  # shown at t >= duration - 0.5 s
    assert from_end["result"]["frame_count"] == kept and _opened(from_end["save"]["file"])["frames"] == kept
    assert too_long["result"] is None and past_end["result"] is None
    assert crop["result"]["dimensions"] == [40, 30] and _opened(crop["save"]["file"])["size"] == (40, 30)
    assert resize["result"]["dimensions"] == [48, 32] and _opened(resize["save"]["file"])["size"] == (48, 32)
    assert all(edit["result"] is None or edit["result"]["type"] == "LatentVideo" for edit in report["edits"])
    components = report["components"]
    assert components["images"] == [frames, SIZE, SIZE, 3] and Fraction(components["frame_rate"]) == FPS
    (_, channels, samples), sample_rate = components["audio"]
    assert channels >= 1 and abs(samples / sample_rate - frames / FPS) < 0.05


def _host_choices(comfy_server, class_type: str, name: str) -> list:
    spec = comfy_server.object_info()[class_type]["input"]["required"][name]
    return list(spec[0]) if isinstance(spec[0], list) else list(spec[1].get("options", []))


def test_the_hosts_video_nodes_take_our_video(comfy_server, singer_models, input_dir, run_prompt):
    """The host's own Save Video with every format x codec it offers, its trim node where it has one, and
    Get Video Components, on our VIDEO."""
    prompt, video = _to_decode_video(comfy_server, singer_models)
    info = comfy_server.object_info()
    saves = {}
    for format_name in _host_choices(comfy_server, "SaveVideo", "format"):
        for codec in _host_choices(comfy_server, "SaveVideo", "codec"):
            node_id = str(910 + len(saves))
            prompt[node_id] = {"class_type": "SaveVideo", "inputs": {
                "video": video, "filename_prefix": f"contract/host_{format_name}_{codec}", "format": format_name,
                "codec": codec}}  # fmt: skip
            saves[node_id] = (format_name, codec)
    if "Video Slice" in info:
        prompt["950"] = {"class_type": "Video Slice", "inputs": {"video": video, "start_time": 0.5, "duration": 1.0,
                                                                 "strict_duration": True}}  # fmt: skip
        prompt["951"] = {"class_type": "SaveVideo", "inputs": {"video": ["950", 0], "filename_prefix": "contract/slice",
                                                               "format": "auto", "codec": "auto"}}  # fmt: skip
    prompt["960"] = {"class_type": "GetVideoComponents", "inputs": {"video": video}}
    prompt["961"] = {"class_type": "SaveImage", "inputs": {"images": ["960", 0], "filename_prefix": "contract/frames"}}
    outcome = run_prompt(prompt, timeout=600)
    assert outcome.status == "success", outcome.error
    frames = round(_song_seconds(input_dir / "0001.wav") * FPS)
    assert len(saves) >= 4
    for node_id in saves:
        facts = _opened(str(_saved_video(comfy_server, outcome, node_id)))
        assert abs(facts["frames"] - frames) <= 1 and facts["size"] == (SIZE, SIZE) and facts["audio"][0] == "aac"
    if "950" in prompt:
        sliced = _opened(str(_saved_video(comfy_server, outcome, "951")))
        assert sliced["frames"] == 25 and abs(sliced["audio"][2] - 1.0) < 0.1
    assert abs(len(outcome.outputs["961"]["images"]) - frames) <= 1


def test_saving_an_edited_video_holds_one_batch_not_the_song(comfy_server, run_prompt):
    """Peak resident memory of saving a 600-frame 256x256 VIDEO (the frames: 450 MB as float32), plain,
    trimmed, cropped and resized, against get_components of the trimmed video (which holds them)."""
    outcome = run_prompt({"1": {"class_type": "SingerTestVideoMemory", "inputs": {"frames": 600, "size": 256}}},
                         timeout=600)  # fmt: skip
    assert outcome.status == "success", outcome.error
    report = json.loads(outcome.outputs["1"]["report"][0])
    peaks, whole = report["peaks_mb"], report["frames_mb"]
    print(json.dumps(report))
    for case in ("save", "trimmed", "cropped", "resized"):
        assert peaks[case] < 0.15 * whole, (case, report)
    assert peaks["components"] > 0.8 * whole * 575 / 600, report  # the measurement sees frames that are held
