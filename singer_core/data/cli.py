"""``python -m singer_core.data prepare VIDEO_OR_FOLDER... --out DATASET --models MODELS [--size 512]
[--workers N] [--no-vocal-separation]``."""

from __future__ import annotations

import argparse
import sys

from singer_core.errors import SingerError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """The ``prepare`` subcommand (also usable from a parent CLI's registry)."""
    from .prepare import PrepareSettings
    from .quality import QualitySettings

    defaults, quality = PrepareSettings(), QualitySettings()
    parser = subparsers.add_parser("prepare", help="turn singing videos into a training dataset",
                                   description="Singing videos -> SINGER training dataset (docs/dataset_format.md).")
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER", help="video files or folders of videos")
    parser.add_argument("--out", required=True, help="dataset folder (created; re-running resumes it)")
    parser.add_argument("--models", required=True, help="models folder laid out like ComfyUI's models/ "
                        "(wav2vec2/, insightface/models/antelopev2/, optional audio_separator/Kim_Vocal_2.onnx)")
    parser.add_argument("--size", type=int, default=defaults.size, help="frame side in pixels (multiple of 64)")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    parser.add_argument("--no-vocal-separation", action="store_true",
                        help="encode the mix even when Kim_Vocal_2.onnx is present")
    parser.add_argument("--crop-ratio", type=float, default=defaults.crop_ratio,
                        help="crop side as a share of the video's shorter side (around the face)")
    parser.add_argument("--detect-every", type=int, default=defaults.detect_every,
                        help="analyse the faces on every N-th 25 fps frame")
    parser.add_argument("--min-face-size", type=float, default=quality.min_face_size,
                        help="reject when the face height is below this share of the crop")
    parser.add_argument("--min-sharpness", type=float, default=quality.min_sharpness,
                        help="reject when the face's variance of the Laplacian is below this")
    parser.add_argument("--silence-db", type=float, default=quality.silence_db,
                        help="audio frames below this RMS level (dBFS) count as silent")
    parser.add_argument("--device", help="device of wav2vec2: cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)
    return parser


def _settings(args):
    from .prepare import PrepareSettings
    from .quality import QualitySettings

    quality = QualitySettings(min_face_size=args.min_face_size, min_sharpness=args.min_sharpness,
                              silence_db=args.silence_db)
    return PrepareSettings(size=args.size, crop_ratio=args.crop_ratio, detect_every=args.detect_every,
                           vocal_separation=not args.no_vocal_separation, quality=quality)


def run(args) -> int:
    from .run import prepare_dataset, summary_table

    settings = _settings(args)
    summary = prepare_dataset(args.inputs, args.out, args.models, settings, workers=args.workers,
                              device=args.device, progress=not args.quiet)
    print(summary_table(summary, args.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m singer_core.data", description="SINGER training data.")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except SingerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
