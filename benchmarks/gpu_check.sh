#!/usr/bin/env bash
# The GPU check: the `cuda` tests and the full-size benchmarks on one GPU, JSON lines on stdout,
# in under 8 minutes. Run it on a machine with a CUDA GPU from the repository root:
#
#   bash tools/gpu_wheels.sh               # here, once: wheels for a machine without a registry
#   bash benchmarks/gpu_check.sh           # there (the device tool: carry .whl)
#
# Rows: {"check": "env"}, {"check": "tests"} (pytest -m cuda: passed/failed/skipped counts),
# bench_pipeline rows per dtype (512x512, one 16-frame clip, 40 DDIM steps with CFG, stage by stage,
# torch.cuda.max_memory_allocated as peak_mb), bench_modules rows (reference pass, one denoising
# call of a 16-frame clip), and {"check": "summary"} with seconds per generated frame and peak VRAM
# per dtype next to the targets (0.3 s/frame, 6 GB), then one training row (bench_train.py --full: seconds per
# step and peak VRAM of a full-size step). Every number is measured; none is extrapolated
# unless STEPS is set below 40, and then the summary says so.
# GPU_CHECK_DEVICE=cpu GPU_CHECK_TINY=1 runs the same flow on tiny models on the CPU (checks the script).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
STEPS=${STEPS:-40}
FRAMES=${FRAMES:-16}
RESOLUTION=${RESOLUTION:-512}
LOG=${OUT:-/tmp/singer_gpu_check}
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1
if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
tiny=()
if [ -n "${GPU_CHECK_TINY:-}" ]; then tiny=(--tiny); RESOLUTION=64; FRAMES=4; STEPS=${STEPS_TINY:-2}; fi

$PY - "$DEVICE" <<'PYENV'
import json, sys, torch
device = sys.argv[1]
row = {"check": "env", "torch": torch.__version__, "device": device}
if device == "cuda" and torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    row.update(gpu=props.name, vram_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
print(json.dumps(row), flush=True)
PYENV

marker=cuda; [ "$DEVICE" = cuda ] || marker="not cuda"
timeout 240 $PY -m pytest -q -p no:cacheprovider -m "$marker" tests/test_device.py \
  > "$LOG/pytest.log" 2>&1
$PY - "$LOG/pytest.log" <<'PYTEST'
import json, re, sys
text = open(sys.argv[1]).read()
counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", text.splitlines()[-1] if text else "")}
print(json.dumps({"check": "tests", **counts, "failures": re.findall(r"^FAILED (.*)$", text, re.M)[:10]}), flush=True)
PYTEST

for dtype in fp16 bf16 fp32; do
  timeout 200 $PY benchmarks/bench_pipeline.py --device "$DEVICE" --resolution "$RESOLUTION" --frames "$FRAMES" \
    --steps "$STEPS" --dtype "$dtype" --decode-batch "$FRAMES" "${tiny[@]}" | tee "$LOG/pipeline_$dtype.jsonl"
done
if [ -z "${GPU_CHECK_TINY:-}" ]; then
  timeout 150 $PY benchmarks/bench_modules.py --device "$DEVICE" --frames "$FRAMES" --dtype fp16 \
    --modules reference,denoise --repeat 3 --warmup | tee "$LOG/modules_fp16.jsonl"
fi

$PY - "$LOG" "$STEPS" "$RESOLUTION" "$FRAMES" "${GPU_CHECK_TINY:-}" <<'PYSUM'
import json, pathlib, sys
import torch
from singer_core.config import NetConfig
from singer_core.pipeline.memory import WorkShape, estimate_working_memory
from singer_core.precision import DTYPES
log, steps, size, frames = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
config = NetConfig.from_file("tests/fixtures/net_tiny.json") if sys.argv[5] else NetConfig.singer()
summary = {"check": "summary", "official_steps": 40, "measured_steps": steps,
           "targets": {"seconds_per_frame": 0.3, "peak_vram_mb": 6144}}
for path in sorted(log.glob("pipeline_*.jsonl")):
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    by_stage = {row["stage"]: row for row in rows}
    if "total" not in by_stage:
        summary[path.stem.split("_")[1]] = {"error": "no total row (see the log)"}
        continue
    per_step = by_stage["step"]["seconds_per_call"]
    other = sum(row["seconds"] for name, row in by_stage.items() if name not in ("step", "total", "reference_next_clip"))
    frames = by_stage["total"]["frames"]
    summary[path.stem.split("_")[1]] = {
        "seconds_per_frame_40_steps": round((other + 40 * per_step) / frames, 4),
        "extrapolated_from_steps": None if steps == 40 else steps,
        "seconds_per_step": per_step,
        "peak_mb": by_stage["total"]["peak_mb"],
        # what ComfyUI is asked to free beyond the weights (singer_core/pipeline/memory.py), to set beside
        # the stage peaks above the weights
        "estimate_working_mb": round(estimate_working_memory(
            config, WorkShape(size, size, frames, 2, True, DTYPES[path.stem.split("_")[1]])) / 2**20),
    }
print(json.dumps(summary), flush=True)
PYSUM

# One training configuration last (issue 10): the official trainable set, fp16 autocast, 8-bit AdamW where
# bitsandbytes is installed, 14 + 2 frames at 512x512, batch 1 -> {"kind": "cuda_step_full", ...}.
if [ -z "${GPU_CHECK_TINY:-}" ]; then
  timeout 180 $PY benchmarks/bench_train.py --full --device "$DEVICE" --sizes "$RESOLUTION" --steps 3 \
    --frozen-dtype fp16 | tee "$LOG/train.jsonl"
else
  timeout 180 $PY benchmarks/bench_train.py --full --device "$DEVICE" --arch tiny --sizes 64 --frames 2 --steps 1 \
    --frozen-dtype bf16 | tee "$LOG/train.jsonl"
fi
