#!/bin/sh
# `make demo`: train fcn8s on the built-in shapes data, evaluate it, run inference on a few
# images, and say where everything is. Runs in runs/ of the current folder.
set -eu
start=$(date +%s)
segcli train fcn8s
run=$(ls -td runs/fcn8s/*/ | head -n 1)
run=${run%/}
segcli eval --metric miou --json "$run/eval.json"
python scripts/export_shapes.py "$run/demo-images" --count 4
segcli infer "$run/best.pt" "$run/demo-images" --out "$run/infer"
end=$(date +%s)
cat <<MSG

demo finished in $((end - start)) s
  run folder : $run (config.yaml, metrics.jsonl, best.pt, last.pt)
  plots      : $run/curves.png, $run/confusion.png
  overlays   : $run/samples/ (validation), $run/infer/ (inference on $run/demo-images)
  scores     : $run/eval.json
MSG
