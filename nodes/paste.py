"""Paste the generated window back into the whole photo: 'SINGER Paste Back' (IMAGE) and the compositor the
'SINGER Decode to Video' option uses. The compositing itself is ``singer_core.pipeline.paste``."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from singer_core.errors import InputError
from singer_core.pipeline.paste import DEFAULT_BAND, MAX_BAND, PasteBack

from .devices import check_interrupted
from .payloads import SingerReference
from .sockets import SingerReferenceSocket

FULL_FRAME_MEMORY = (
    "Every frame at the photo's size, as float32: frames x height x width x 3 x 4 bytes (a 1080x1920 photo is "
    "25 MB a frame, 37 GB for a minute at 25 fps). For a whole song connect the reference to 'SINGER Decode to "
    "Video' instead: it composites batch by batch while it encodes."
)


def band_input(name: str = "band", optional: bool = False) -> io.Float.Input:
    return io.Float.Input(
        name, default=DEFAULT_BAND, min=0.0, max=MAX_BAND, step=0.01, optional=optional,
        tooltip=f"Fraction of the window's shorter side over which the generated window fades into the photo "
        f"(default {DEFAULT_BAND}; 0 = hard edge). Edges on the photo's border are not faded.",
    )  # fmt: skip


def color_match_input(name: str = "color_match", optional: bool = False) -> io.Boolean.Input:
    return io.Boolean.Input(
        name, default=False, optional=optional,
        tooltip="Match each frame's window to the photo's colours (mean and spread per channel) in the band.",
    )  # fmt: skip


def compositor(reference: SingerReference, band: float = DEFAULT_BAND, color_match: bool = False) -> PasteBack:
    """The paste-back for the photo a reference was made from (it travels in the reference)."""
    if reference.photo is None:
        raise InputError("This reference carries no photo to paste into; make it with 'SINGER Reference Encode'.")
    return PasteBack.for_reference(reference.photo, reference.face, band, color_match)


class SingerPasteBack(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerPasteBack",
            display_name="SINGER Paste Back",
            category="SINGER/video",
            description="Puts the generated frames back into the original photo, where 'SINGER Reference Encode' "
            "took the window from, at the photo's own size (odd widths/heights lose their last column/row: video "
            "encoders need even sizes), fading the window's edge into the photo. Pixels outside the window are the "
            "photo's own. Outputs IMAGE frames for any image or video node (e.g. Create Video).",
            inputs=[
                io.Image.Input("images", tooltip="Frames generated from this reference (e.g. SINGER Video Decode)."),
                SingerReferenceSocket.Input("reference", tooltip="The reference the frames were generated from."),
                band_input(),
                color_match_input(),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip=FULL_FRAME_MEMORY)],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, reference: SingerReference, band: float = DEFAULT_BAND,
                color_match: bool = False) -> io.NodeOutput:  # fmt: skip
        paste = compositor(reference, band, color_match)
        pieces = []
        for piece in images.split(paste.frames_per_piece):
            check_interrupted()
            pieces.append(paste.composite(piece))
        return io.NodeOutput(torch.cat(pieces))
