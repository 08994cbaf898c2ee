#!/bin/sh
# The GPU check of issue 16 in one go, on a fresh CUDA machine, within 8 minutes: the `cuda`
# tests, 30 AMP training steps of fcn8s, unet, deeplabv3plus, mask_rcnn, ms_rcnn and yolact at
# their paper settings (finite losses, peak memory), Fast NMS against batched_nms, and YOLACT
# and MS R-CNN against Mask R-CNN (scripts/bench_nms.py, scripts/bench_recipes.py). Every step
# has its own timeout inside an overall budget; failures are recorded, not fatal.
#
#   sh scripts/gpu_check.sh [OUT] [gpu_check.py options]   # OUT default: runs/gpu_check
#   sh scripts/gpu_check.sh runs/gpu_check --augment        # + YOLACT quick: flip vs ssd
#
# One JSON summary: OUT/summary.json (each step's status, seconds, losses, peak memory, figures);
# each step's output: OUT/*.log.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu_check}
[ $# -gt 0 ] && shift
# `make install` takes the pinned torch build from the package mirror (DEVELOPERS.md); its time
# does not count against the budget.
[ -x .venv/bin/python ] || make install
.venv/bin/python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
# every step runs under its own timeout, cut to the 480 s budget (`--augment`: later, extra)
.venv/bin/python scripts/gpu_check.py --device cuda --out "$OUT" --budget 480 "$@"
