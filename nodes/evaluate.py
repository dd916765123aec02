"""'SINGER Evaluate': the weight-free quality metrics of a generated video, shown as text in the graph."""

from __future__ import annotations

from contextlib import ExitStack

from comfy_api.latest import io, ui

from singer_core.errors import InputError

from .sockets import FaceAnalyzerSocket


def _mono(audio: dict | None):
    """ComfyUI AUDIO -> (mono float32 samples, rate), or None."""
    if audio is None:
        return None
    from singer_core.audio.waveform import as_channels_first, downmix, to_unit_range

    waveform = to_unit_range(as_channels_first(audio["waveform"]))
    return downmix(waveform).numpy(), int(audio["sample_rate"])


def _frames(images, video, role: str):
    """(frames, fps or None, audio or None) from an IMAGE batch or a VIDEO."""
    if video is not None:
        components = video.get_components()
        return components.images, float(components.frame_rate), _mono(components.audio)
    if images is not None:
        return images, None, None
    if role == "generated":
        raise InputError("Connect the generated video: 'images' (an IMAGE batch) or 'video' (a VIDEO).")
    return None, None, None


class SingerEvaluate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SingerEvaluate",
            display_name="SINGER Evaluate",
            category="SINGER/evaluation",
            description="Scores a generated video with the weight-free metrics: CPBD sharpness; PSNR/SSIM against "
            "a reference video; with a face analyzer, landmark Diversity, and with the song, BAS (beat alignment) "
            "and MS-Sync (loudness vs mouth/head motion at 0.2-1.6 s). Definitions: docs/evaluation.md.",
            inputs=[
                io.Image.Input("images", optional=True, tooltip="Generated frames (IMAGE batch)."),
                io.Video.Input("video", optional=True, tooltip="Generated video (used instead of 'images')."),
                io.Audio.Input("audio", optional=True,
                               tooltip="The song (for BAS and MS-Sync); a VIDEO's own audio is used otherwise."),
                io.Float.Input("fps", default=25.0, min=1.0, max=120.0, step=1.0,
                               tooltip="Frame rate of 'images' (a VIDEO carries its own)."),
                io.Image.Input("reference_images", optional=True, tooltip="Reference frames for PSNR/SSIM."),
                io.Video.Input("reference_video", optional=True, tooltip="Reference video for PSNR/SSIM."),
                FaceAnalyzerSocket.Input("face_analyzer", optional=True,
                                         tooltip="From 'SINGER Face Analyzer Loader': landmarks for Diversity, "
                                         "BAS and MS-Sync."),
            ],
            outputs=[io.String.Output(display_name="report")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images=None, video=None, audio=None, fps: float = 25.0, reference_images=None,
                reference_video=None, face_analyzer=None) -> io.NodeOutput:
        from singer_core.evaluation.clip import evaluate_clip

        frames, video_fps, video_audio = _frames(images, video, "generated")
        reference, _, _ = _frames(reference_images, reference_video, "reference")
        song = _mono(audio) if audio is not None else video_audio
        with ExitStack() as stack:  # the face sessions live for this node only (GPU memory, see nodes.payloads)
            models = stack.enter_context(face_analyzer.session()) if face_analyzer is not None else None
            text = evaluate_clip(frames, video_fps or fps, song, reference, models).to_text()
        return io.NodeOutput(text, ui=ui.PreviewText(text))
