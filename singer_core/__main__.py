"""Command line: ``python -m singer_core generate --image face.png --audio song.wav --out out.mp4 --models DIR``."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from singer_core.errors import SingerError

# Subcommands that live in their own module: each exposes ``add_parser(subparsers)``, which adds its
# parser with ``set_defaults(handler=...)``; the handler takes the parsed arguments and returns the exit code.
SUBCOMMANDS = (
    "singer_core.batch",
    "singer_core.evaluation.cli",
    "singer_core.download",
)


def _parser() -> argparse.ArgumentParser:
    from singer_core.pipeline.paste import DEFAULT_BAND
    from singer_core.precision import DTYPES  # the one table of format names

    parser = argparse.ArgumentParser(prog="python -m singer_core", description="SINGER: a photo + a song -> video.")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="generate a singing video")
    gen.add_argument("--image", required=True, help="reference portrait (PNG/JPEG)")
    gen.add_argument("--audio", required=True, help="the song (wav, mp3, flac, ...)")
    gen.add_argument("--out", required=True, help="output .mp4 path")
    gen.add_argument("--models", required=True, help="models folder laid out like ComfyUI's models/")
    gen.add_argument("--checkpoint", help="file name in MODELS/singer/ when there are several")
    gen.add_argument("--vae", help="entry name in MODELS/vae/ when there are several")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--steps", type=int, default=40)
    gen.add_argument("--guidance", "--cfg", dest="guidance", type=float, default=3.5,
                     help="classifier-free guidance (official 3.5); 1 or less: none, half the UNet work")
    gen.add_argument("--pose-weight", type=float, default=1.0)
    gen.add_argument("--face-weight", type=float, default=1.0)
    gen.add_argument("--lip-weight", type=float, default=1.0)
    gen.add_argument("--clip-length", type=int, default=16)
    gen.add_argument("--motion-frames", type=int, default=2)
    gen.add_argument("--fps", type=int, default=25)
    gen.add_argument("--size", type=int, default=512, help="output width and height (multiple of 64)")
    gen.add_argument("--dtype", default="fp32", choices=list(DTYPES), help="weight and compute format of the net")
    gen.add_argument("--scheduler", default="ddim", choices=["ddim", "dpmpp", "euler"])
    gen.add_argument("--motion-source", default="decoded", choices=["decoded", "latent"])
    gen.add_argument("--overlap", type=int, default=0, help="frames shared and cross-faded between clips")
    gen.add_argument("--color-match", action="store_true", help="match each clip's colours to the reference")
    gen.add_argument("--face-expand-ratio", type=float, default=1.2)
    gen.add_argument("--framing", default="face", choices=["face", "full"],
                     help="face: crop around the face first; full: resize the whole photo (official)")
    gen.add_argument("--full-frame", action="store_true",
                     help="paste the generated window back into the whole photo: the video has the photo's size "
                     "(odd widths/heights lose their last column/row, H.264 needs even sizes)")
    gen.add_argument("--paste-band", type=float, default=DEFAULT_BAND,
                     help=f"with --full-frame: fraction of the window's shorter side cross-faded into the photo "
                     f"(default {DEFAULT_BAND}; 0 = hard edge)")
    gen.add_argument("--paste-color-match", action="store_true",
                     help="with --full-frame: match each frame's window to the photo's colours in the band")
    gen.add_argument("--decode-batch", type=int, default=1, help="frames per VAE decode call")
    gen.add_argument("--vae-tiling", action="store_true")
    gen.add_argument("--no-vocal-separation", action="store_true", help="encode the mix even if the separator exists")
    gen.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    gen.add_argument("--dry-run", action="store_true", help="validate inputs and models, generate nothing")
    gen.add_argument("--fresh", action="store_true",
                     help="discard the unfinished render kept next to --out (OUT.singer-resume/) and start over")
    gen.set_defaults(handler=_generate)
    for module in SUBCOMMANDS:
        importlib.import_module(module).add_parser(commands)
    return parser


def _options(args):
    from singer_core.pipeline.options import GenerationOptions

    return GenerationOptions(
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        pose_weight=args.pose_weight,
        face_weight=args.face_weight,
        lip_weight=args.lip_weight,
        clip_length=args.clip_length,
        motion_frames=args.motion_frames,
        fps=args.fps,
        width=args.size,
        height=args.size,
        dtype=args.dtype,
        scheduler=args.scheduler,
        motion_source=args.motion_source,
        overlap=args.overlap,
        color_match=args.color_match,
    )


def check_paste_options(args) -> None:
    """The paste-back options (``--paste-band``) checked before any model loads (``generate`` and each batch row)."""
    from singer_core.pipeline.paste import check_band

    check_band(args.paste_band)


def _device(name: str | None):
    import torch

    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _generate(args) -> int:
    from singer_core.errors import InputError
    from singer_core.pipeline import session
    from singer_core.pipeline.generate import iter_clips
    from singer_core.pipeline.model_files import locate_models
    from singer_core.pipeline.paste import even_size

    options = _options(args)
    check_paste_options(args)
    if args.decode_batch < 1:
        raise InputError(f"--decode-batch must be >= 1 (got {args.decode_batch}).")
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"--out must end in .mp4 (got {out}).")
    files = locate_models(args.models, checkpoint=args.checkpoint, vae=args.vae)
    image = session.read_image(args.image)
    song, rate = session.read_song(args.audio, keep_channels=session.separates(files, not args.no_vocal_separation))
    if args.dry_run:
        for line in session.dry_run(files, image, song, rate, options, args.framing):
            print(line)
        if args.full_frame:
            print("full frame: {}x{} (the photo, even-rounded)".format(*even_size(image.shape[1], image.shape[0])))
        print("dry run OK: nothing generated")
        return 0
    device = _device(args.device)
    reference = session.prepare_reference(files, image, options, args.face_expand_ratio, args.framing)
    audio = session.prepare_audio(files, song, rate, options, device, separate=not args.no_vocal_separation)
    del song  # the writer muxes the song from its file: nothing song-long at the native rate stays
    state = session.open_render(out, files, image, args.audio, args, reference, audio, options, device)
    paste = session.paste_back(image, reference, args.full_frame, args.paste_band, args.paste_color_match)
    del image  # a changed input or option is refused above, before the net is loaded
    net = session.load_net(files, options, device)
    codec = session.load_codec(files, options, device, args.decode_batch, args.vae_tiling)
    session.write_render(out, Path(args.audio), state, lambda progress: iter_clips(
        net, codec, reference, audio, options, on_progress=progress, resume=state), paste=paste)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except SingerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
