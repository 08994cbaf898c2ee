"""segcli.ops.fast_nms vs torchvision.ops.batched_nms, side by side in one run.

80 classes x 200 boxes (COCO's class count and YOLACT's top_k), boxes clustered around a few
objects per class so that suppression really happens, IoU threshold 0.5. The two are timed in
alternation and the best of REPEATS runs of each is compared (issue 5's target: fast_nms at
least as fast on the CPU). `--device cuda` times the GPU instead (synchronised).
"""

from __future__ import annotations

import argparse

import torch
from torchvision.ops import batched_nms

from segcli import io
from segcli.commands.benchmark_measures import time_interleaved
from segcli.ops.nms import fast_nms

CLASSES, PER_CLASS, REPEATS, IOU = 80, 200, 30, 0.5


def make_detections(device: torch.device, seed: int = 0):
    """boxes [C*P, 4] xyxy in a 550 px image, scores [C*P], labels [C*P]."""
    g = torch.Generator().manual_seed(seed)
    objects = 5  # per class: jittered copies of a few boxes, like a detector's raw output
    centre = torch.rand(CLASSES, objects, 2, generator=g) * 450 + 50
    size = torch.rand(CLASSES, objects, 2, generator=g) * 150 + 20
    pick = torch.randint(0, objects, (CLASSES, PER_CLASS), generator=g)
    index = pick[..., None].expand(-1, -1, 2)
    c = centre.gather(1, index) + torch.randn(CLASSES, PER_CLASS, 2, generator=g) * 15
    s = size.gather(1, index) * (1 + 0.2 * torch.randn(CLASSES, PER_CLASS, 2, generator=g)).abs()
    boxes = torch.cat([c - s / 2, c + s / 2], -1).reshape(-1, 4)
    scores = torch.rand(CLASSES * PER_CLASS, generator=g)
    labels = torch.arange(CLASSES).repeat_interleave(PER_CLASS)
    return boxes.to(device), scores.to(device), labels.to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    boxes, scores, labels = make_detections(device)

    def fast():
        return fast_nms(boxes, scores, labels, IOU, top_k=PER_CLASS)

    def standard():
        return batched_nms(boxes, scores, labels, IOU)

    kept_fast, kept_std = fast(), standard()
    assert set(kept_fast.tolist()) <= set(kept_std.tolist()), "Fast NMS must keep a subset"
    # alternate, so load on a shared machine hits both alike (the calls above warmed both up)
    t_fast, t_std = time_interleaved([fast, standard], 0, REPEATS, {device})
    best_fast, best_std = min(t_fast), min(t_std)
    print(
        f"{CLASSES} classes x {PER_CLASS} boxes on {device}, IoU {IOU}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, best of {REPEATS}"
    )
    print(f"torchvision batched_nms : {best_std * 1e3:8.2f} ms, keeps {len(kept_std)}")
    print(f"segcli fast_nms         : {best_fast * 1e3:8.2f} ms, keeps {len(kept_fast)}")
    print(f"ratio batched_nms/fast_nms: {best_std / best_fast:.2f}x")
    if args.json:
        figures = {
            "device": str(device),
            "boxes": CLASSES * PER_CLASS,
            "batched_nms_ms": best_std * 1e3,
            "fast_nms_ms": best_fast * 1e3,
            "batched_over_fast": best_std / best_fast,
            "kept": {"batched_nms": len(kept_std), "fast_nms": len(kept_fast)},
        }
        io.write_json(args.json, figures)


if __name__ == "__main__":
    main()
