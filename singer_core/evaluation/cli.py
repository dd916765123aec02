"""``python -m singer_core evaluate --generated DIR [--reference DIR] [--metrics a,b] [--models DIR] --out R.json``."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from .registry import METRICS

    parser = subparsers.add_parser("evaluate", help="score generated videos (PSNR, SSIM, CPBD, FVD, LSE, ...)")
    parser.add_argument("--generated", required=True, help="folder of generated videos")
    parser.add_argument("--reference", help="folder of reference videos, paired with the generated ones by name")
    parser.add_argument("--metrics", help=f"comma-separated subset of: {', '.join(METRICS)} (default: all)")
    parser.add_argument("--models", help="models folder (ComfyUI models/ layout) with the metric weights")
    parser.add_argument("--out", required=True, help="report path (.json); .md and .csv are written next to it")
    parser.add_argument("--face-crops", action="store_true",
                        help="videos are already 224x224 face crops: LSE skips face detection")
    parser.add_argument("--fresh", action="store_true",
                        help="recompute every video (default: reuse the finished ones kept in REPORT.parts/)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.set_defaults(handler=run)
    return parser


def run(args) -> int:
    from . import evaluate

    report = evaluate(args.generated, args.reference, args.metrics, args.models, args.out,
                      device=args.device, face_crops=args.face_crops, fresh=args.fresh)
    print(report.to_markdown())
    print(f"wrote {args.out} (+ .md, .csv)")
    return 0
