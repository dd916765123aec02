#!/usr/bin/env bash
# Download, here, the wheels benchmarks/gpu_check.sh needs on the GPU machine, which reaches no
# package registry: its image has torch, transformers, safetensors, numpy, einops, pytest, accelerate,
# peft, onnxruntime and opencv but not the packages below. They land in .whl/ (ignored by git),
# which the device call carries (`carry: [".whl"]`); gpu_check.sh installs them into /tmp/site.
# Python 3.12, x86-64 manylinux wheels, no dependencies (each one the image lacks is listed).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
packages=(diffusers pytorch_wavelets PyWavelets av soxr)
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d .whl "${packages[@]}"
du -sh .whl
