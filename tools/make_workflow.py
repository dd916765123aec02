#!/usr/bin/env python3
"""Write the shipped workflow (``workflows/singer.json`` and its copy ``example_workflows/singer.json``).

The workflow is built here from a short table (nodes, where they sit, what feeds what) instead of being
edited by hand in the editor, so its layout is deliberate: every node in view when it opens at the saved
zoom, nothing overlapping (``tests/test_workflow_layout.py`` checks both on the written file).

    python tools/make_workflow.py [--decode stream|images]

``stream`` (default) saves the video with 'SINGER Decode to Video' (decodes and encodes clip by clip, memory
independent of the song length); ``images`` uses 'SINGER Video Decode' (IMAGE frames) + the core Create Video.
It also writes ``singer_full_frame.json``: the stream workflow with the reference connected to 'SINGER Decode to
Video', so the video is the whole photo with the singing window pasted back, and the preview shows where the window
sits in the photo.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = (REPO / "workflows" / "singer.json", REPO / "example_workflows" / "singer.json")
FULL_FRAME_TARGETS = tuple(path.with_name("singer_full_frame.json") for path in TARGETS)
VIEW_SCALE = 0.8  # the zoom the workflow opens at; the layout fits a 1600x900 px canvas at it

MODEL_NOTE = """SINGER model files (put them here, then press R to refresh the lists):

ComfyUI/models/singer/singer_net.pth
    SINGER checkpoint net.pth from huggingface.co/yl2333/SINGER (or its .safetensors conversion)
ComfyUI/models/wav2vec2/wav2vec2-base-960h/
    facebook/wav2vec2-base-960h: config.json + model.safetensors (pick model.safetensors)
ComfyUI/models/insightface/models/antelopev2/
    scrfd_10g_bnkps.onnx, glintr100.onnx, 2d106det.onnx (insightface antelopev2 pack)
ComfyUI/models/vae/sd-vae-ft-mse.safetensors
    stabilityai/sd-vae-ft-mse (diffusion_pytorch_model.safetensors renamed)
ComfyUI/models/audio_separator/Kim_Vocal_2.onnx   (optional)
    huggingface.co/huangjackson/Kim_Vocal_2: sings from the voice without the music, as the official
    inference does. Without it: select 'Load SINGER Vocal Separator' and bypass it (Ctrl+B)."""

USAGE_NOTE = """How to use:
1. Load a portrait (one clearly visible face) and a song.
2. Output size: width/height on 'SINGER Reference Encode' (multiples of 64; SINGER was trained at 512x512).
   'framed_image' shows the crop the video will show.
3. clip_length is set once, on 'SINGER Audio Encode' (official 16); the sampler follows it.
4. Official settings: 40 ddim steps, cfg 3.5, seed 42, weights 1.0. cfg 1.0 = no guidance, twice as fast.
5. Precision is chosen once, on 'Load SINGER Checkpoint' (auto = ComfyUI's choice for your GPU).
6. The sampler shows a preview of the current clip while it runs (enable previews in the settings).
7. {decode}"""

DECODE_NOTES = {
    "stream": "'SINGER Decode to Video' decodes and encodes clip by clip when the video is saved: memory does\n"
    "   not grow with the song. Lower batch_size, or turn tiled on, if the GPU runs out of memory.",
    "images": "'SINGER Video Decode' turns the latents into frames (lower batch_size or turn on tiled if the GPU\n"
    "   runs out of memory); Create Video adds the song.",
}
FULL_FRAME_NOTE = """
8. Whole photo: the reference goes into 'SINGER Decode to Video' too, which pastes each batch back into the
   photo at its own size (odd sizes lose a last column/row) as it encodes. paste_band: how much of the
   window's edge fades into the photo (0.1 of its shorter side); paste_color_match: match the photo's colours.
   The preview shows the window in the photo. For IMAGE frames use 'SINGER Paste Back' instead."""


@dataclass
class Node:
    key: str
    type: str
    pos: tuple[int, int]
    size: tuple[int, int]
    widgets: list = field(default_factory=list)
    inputs: list[tuple[str, str, tuple[str, int] | None, bool]] = field(default_factory=list)  # name, type, src, widget
    outputs: list[tuple[str, str]] = field(default_factory=list)


def _nodes(decode: str, full_frame: bool = False) -> list[Node]:
    col1, col2, col3, col4 = 20, 380, 720, 1080
    nodes = [
        Node("image", "LoadImage", (col1, 40), (320, 330), ["0001.png", "image"],
             outputs=[("IMAGE", "IMAGE"), ("MASK", "MASK")]),
        Node("audio", "LoadAudio", (col1, 410), (320, 136), ["0001.wav", None, None], outputs=[("AUDIO", "AUDIO")]),
        Node("ckpt", "SingerCheckpointLoader", (col1, 586), (320, 82), ["singer_net.pth", "auto"],
             outputs=[("singer_model", "SINGER_MODEL")]),
        Node("wav2vec", "SingerAudioEncoderLoader", (col1, 708), (320, 58), ["wav2vec2-base-960h/model.safetensors"],
             outputs=[("audio_encoder", "SINGER_AUDIO_ENCODER")]),
        Node("faces", "SingerFaceAnalyzerLoader", (col1, 806), (320, 58), ["antelopev2"],
             outputs=[("face_analyzer", "SINGER_FACE_ANALYZER")]),
        Node("separator", "SingerVocalSeparatorLoader", (col1, 904), (320, 58), ["Kim_Vocal_2.onnx"],
             outputs=[("separator", "SINGER_VOCAL_SEPARATOR")]),
        Node("vae", "VAELoader", (col1, 1002), (320, 58), ["sd-vae-ft-mse.safetensors"], outputs=[("VAE", "VAE")]),
        Node("reference", "SingerReferenceEncode", (col2, 40), (300, 250), [512, 512, 1.2, "face", 0],
             inputs=[("image", "IMAGE", ("image", 0), False), ("vae", "VAE", ("vae", 0), False),
                     ("face_analyzer", "SINGER_FACE_ANALYZER", ("faces", 0), False),
                     ("face_mask", "MASK", None, False)],
             outputs=[("reference", "SINGER_REFERENCE"), ("framed_image", "IMAGE"),
                      *([("placement", "IMAGE")] if full_frame else [])]),
        Node("encode", "SingerAudioEncode", (col2, 330), (300, 110), [16],
             inputs=[("audio_encoder", "SINGER_AUDIO_ENCODER", ("wav2vec", 0), False),
                     ("audio", "AUDIO", ("audio", 0), False),
                     ("separator", "SINGER_VOCAL_SEPARATOR", ("separator", 0), False)],
             outputs=[("singer_audio", "SINGER_AUDIO")]),
        Node("framed", "PreviewImage", (col2, 480), (300, 300), [],
             inputs=[("images", "IMAGE", ("reference", 2 if full_frame else 1), False)]),
        Node("sampler", "SingerSampler", (col3, 40), (320, 330),
             [42, "fixed", 40, 3.5, 1.0, 1.0, 1.0, 2, "ddim", "auto"],
             inputs=[("singer_model", "SINGER_MODEL", ("ckpt", 0), False),
                     ("singer_audio", "SINGER_AUDIO", ("encode", 0), False),
                     ("reference", "SINGER_REFERENCE", ("reference", 0), False)],
             outputs=[("latent", "LATENT"), ("fps", "FLOAT")]),
        Node("save", "SaveVideo", (col4, 40), (420, 460), ["video/singer", "auto", "auto"],
             inputs=[("video", "VIDEO", ("video", 0), False)]),
        Node("model_note", "Note", (col2, 820), (660, 240), [MODEL_NOTE]),
        Node("usage_note", "Note", (col4, 540), (420, 520),
             [USAGE_NOTE.format(decode=DECODE_NOTES[decode]) + (FULL_FRAME_NOTE if full_frame else "")]),
    ]
    if full_frame:
        nodes.append(Node("video", "SingerDecodeVideo", (col3, 410), (320, 240), [25.0, 8, False, 512, 0.1, False],
                          inputs=[("vae", "VAE", ("vae", 0), False), ("latent", "LATENT", ("sampler", 0), False),
                                  ("fps", "FLOAT", ("sampler", 1), True), ("audio", "AUDIO", ("audio", 0), False),
                                  ("reference", "SINGER_REFERENCE", ("reference", 0), False)],
                          outputs=[("video", "VIDEO")]))
    elif decode == "stream":
        nodes.append(Node("video", "SingerDecodeVideo", (col3, 410), (320, 170), [25.0, 8, False, 512],
                          inputs=[("vae", "VAE", ("vae", 0), False), ("latent", "LATENT", ("sampler", 0), False),
                                  ("fps", "FLOAT", ("sampler", 1), True), ("audio", "AUDIO", ("audio", 0), False)],
                          outputs=[("video", "VIDEO")]))
    else:
        nodes.append(Node("frames", "SingerVideoDecode", (col3, 410), (320, 130), [8, False, 512],
                          inputs=[("vae", "VAE", ("vae", 0), False), ("latent", "LATENT", ("sampler", 0), False)],
                          outputs=[("images", "IMAGE")]))
        nodes.append(Node("video", "CreateVideo", (col3, 580), (320, 100), [25],
                          inputs=[("images", "IMAGE", ("frames", 0), False), ("fps", "FLOAT", ("sampler", 1), True),
                                  ("audio", "AUDIO", ("audio", 0), False)],
                          outputs=[("VIDEO", "VIDEO")]))
    return nodes


def build(decode: str = "stream", full_frame: bool = False) -> dict:
    """The UI-format workflow (what ComfyUI's editor saves)."""
    specs = _nodes(decode, full_frame)
    ids = {spec.key: number for number, spec in enumerate(specs, start=1)}
    links, out_links = [], {}
    for spec in specs:
        for slot, (_, kind, source, _) in enumerate(spec.inputs):
            if source is not None:
                link_id = len(links) + 1
                links.append([link_id, ids[source[0]], source[1], ids[spec.key], slot, kind])
                out_links.setdefault((source[0], source[1]), []).append(link_id)
    nodes = []
    for order, spec in enumerate(specs):
        inputs = []
        for slot, (name, kind, _source, widget) in enumerate(spec.inputs):
            entry = {"name": name, "type": kind, "link": links_for(links, ids[spec.key], slot)}
            if widget:
                entry["widget"] = {"name": name}
            inputs.append(entry)
        outputs = [{"name": name, "type": kind, "links": out_links.get((spec.key, slot), []), "slot_index": slot}
                   for slot, (name, kind) in enumerate(spec.outputs)]
        nodes.append({"id": ids[spec.key], "type": spec.type, "pos": list(spec.pos), "size": list(spec.size),
                      "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": outputs,
                      "properties": {"Node name for S&R": spec.type}, "widgets_values": spec.widgets})
    return {"last_node_id": len(nodes), "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {"ds": {"scale": VIEW_SCALE, "offset": [0, 0]}}, "version": 0.4}


def links_for(links: list, node_id: int, slot: int) -> int | None:
    return next((link[0] for link in links if link[3] == node_id and link[4] == slot), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decode", choices=sorted(DECODE_NOTES), default="stream")
    args = parser.parse_args()
    for targets, workflow in ((TARGETS, build(args.decode)), (FULL_FRAME_TARGETS, build("stream", full_frame=True))):
        text = json.dumps(workflow, indent=2) + "\n"
        for target in targets:
            target.write_text(text)
            print(f"wrote {target}")


if __name__ == "__main__":
    main()
