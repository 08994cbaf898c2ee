"""Superpixel refinement against the dense CRF and plain prediction, side by side in one run:
mIoU and ms per image of each semantic checkpoint on its val split (issue 17's closing note:
the shapes checkpoints of deeplabv1 and deeplabv3plus).

    python scripts/bench_refine.py runs/deeplabv1/1/best.pt runs/deeplabv3plus/1/best.pt \
        [--superpixels 50 100 200] [--compactness 10] [--device cpu]

Each prediction function runs over the whole val split once to warm up, then `--repeats` times
timed, the functions taking turns; the CRF is left out when pydensecrf2 is not installed.
"""

from __future__ import annotations

import argparse
import os
import time

# torch's OpenMP threads spin after each parallel region; on a small machine that spinning
# starved the NumPy/SLIC/CRF work that follows (10x slower and erratic on 2 cores), so
# they sleep instead; set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from segcli import tasks
from segcli.engine import checkpoint  # noqa: E402
from segcli.engine.device import select_device, select_precision  # noqa: E402
from segcli.engine.distributed import DistInfo  # noqa: E402
from segcli.errors import ConfigError  # noqa: E402
from segcli.ops.superpixel_refine import superpixel_predictor  # noqa: E402
from segcli.ops.tta import build_predictor, plain_logits  # noqa: E402
from segcli.tasks.evaluation import run_evaluation  # noqa: E402


def predictors(segment_counts: list[int], compactness: float) -> dict:
    found = {"plain": plain_logits}
    for n in segment_counts:
        found[f"superpixels {n}"] = superpixel_predictor(n, compactness)
    try:
        found["crf"] = build_predictor(crf=True)
    except ConfigError as exc:
        print(f"(no CRF: {exc})")
    return found


@torch.no_grad()
def bench(path: str, functions: dict, device, repeats: int) -> None:
    model, recipe, cfg, names, _ = checkpoint.restore_model(path, device)
    data = tasks.for_recipe(recipe).build_data(cfg, splits=("val",))
    precision = select_precision(device, cfg.amp)
    seconds = {name: [] for name in functions}
    scores = {}
    for timed in [False] + [True] * repeats:
        for name, predict in functions.items():
            start = time.perf_counter()
            task = tasks.for_recipe(recipe, predict)
            result, _ = run_evaluation(task, model, data, cfg, device, precision, DistInfo())
            if timed:
                seconds[name].append(time.perf_counter() - start)
            scores[name] = result["miou"]
    print(f"\n{path} ({recipe.name}, {len(data.val)} val images of {cfg.img_size} px)")
    for name in functions:
        ms = 1000 * min(seconds[name]) / len(data.val)
        print(f"  {name:<18} mIoU {scores[name]:.4f}   {ms:8.2f} ms/image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--superpixels", type=int, nargs="+", default=[100])
    parser.add_argument("--compactness", type=float, default=10.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    functions = predictors(args.superpixels, args.compactness)
    device = select_device(args.device)
    for path in args.checkpoints:
        bench(path, functions, device, args.repeats)


if __name__ == "__main__":
    main()
