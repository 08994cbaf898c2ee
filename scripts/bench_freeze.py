"""Training step time of Mask R-CNN R50-FPN (the paper's architecture, frozen batch norm as
when starting from COCO weights) with `--freeze heads` against `--freeze none`, side by side in
one process: the two models' steps alternate on the same batch of the built-in shapes at
`--img-size` (default 320, the network's short side), batch 2, SGD."""

from __future__ import annotations

import argparse

import numpy as np
import torch

from segcli.commands.benchmark import train_step
from segcli.commands.benchmark_measures import time_interleaved
from segcli.config import resolve_config
from segcli.engine.freeze import freeze_backbone
from segcli.recipe import REFERENCE_CLASSES, get_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="mask_rcnn")
    parser.add_argument("--img-size", type=int, default=320)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args()
    recipe = get_recipe(args.recipe)
    flags = {"img_size": args.img_size, "batch_size": 2, "weights": "(pretrained)"}
    cfg = resolve_config(recipe, flags, quick=False)  # the paper's settings, frozen BN
    steps, trainable = {}, {}
    for spec in ("none", "heads"):
        torch.manual_seed(0)
        model = recipe.build_model(REFERENCE_CLASSES[recipe.task], **cfg.model)
        freeze_backbone(model, spec)
        trainable[spec] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        steps[spec] = train_step(recipe, model, cfg, torch.device("cpu"))
    times = time_interleaved(list(steps.values()), args.warmup, args.iters, {torch.device("cpu")})
    median = {spec: float(np.median(t)) for spec, t in zip(steps, times)}
    print(
        f"{recipe.name} at --img-size {args.img_size}, batch 2, {torch.get_num_threads()} threads"
    )
    for spec in steps:
        print(
            f"  --freeze {spec:5}: {median[spec]:.2f} s per iteration (median of {args.iters}), "
            f"{trainable[spec] / 1e6:.1f}M trainable parameters"
        )
    print(f"  heads / none: {median['heads'] / median['none']:.2f}x the time per iteration")


if __name__ == "__main__":
    main()
