"""segcli's PanopticQuality against panopticapi's own loop (transcribed in tests/) and
torchmetrics' PanopticQuality on random images, and the time per image of segcli and
panopticapi's loop side by side.

1. Semantics where all three agree: no crowd, no predicted VOID.
2. With crowd regions and predicted VOID: torchmetrics has no crowd (its crowd segments are
   scored as ordinary ones here) and leaves predicted VOID out of the ground truth's area.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from panoptic_cases import CATEGORIES, STUFF, THINGS, random_pair  # noqa: E402
from panopticapi_reference import new_stat, pq_average, pq_stat_image  # noqa: E402
from torchmetrics.detection import PanopticQuality as TorchmetricsPQ  # noqa: E402

from segcli.metrics.panoptic import PanopticQuality  # noqa: E402

IMAGES = 300


def torchmetrics_input(ids, segments):
    category = {s["id"]: s["category_id"] for s in segments} | {0: 0}
    cats = np.vectorize(category.get)(ids)
    return torch.from_numpy(np.stack([cats, np.where(np.isin(cats, THINGS), ids, 0)], -1))[None]


def three_ways(images) -> dict[str, tuple[float, float, float]]:
    ours, stat = PanopticQuality(CATEGORIES), new_stat()
    theirs = TorchmetricsPQ(THINGS, STUFF, allow_unknown_preds_category=True, return_sq_and_rq=True)
    for gt, gt_segments, pred, pred_segments in images:
        ours.update(pred, pred_segments, gt, gt_segments)
        pq_stat_image(stat, gt, gt_segments, pred, pred_segments)
        theirs.update(torchmetrics_input(pred, pred_segments), torchmetrics_input(gt, gt_segments))
    mine = ours.compute()
    reference, _ = pq_average(stat, {c["id"]: c for c in CATEGORIES}, None)
    return {
        "segcli": (mine["pq"], mine["sq"], mine["rq"]),
        "panopticapi": (reference["pq"], reference["sq"], reference["rq"]),
        "torchmetrics": tuple(theirs.compute().tolist()),
    }


def report(title: str, scores: dict) -> None:
    print(f"\n{title}")
    for name, (pq, sq, rq) in scores.items():
        print(f"  {name:<13} PQ {100 * pq:8.4f}  SQ {100 * sq:8.4f}  RQ {100 * rq:8.4f}")
    base = np.array(scores["segcli"])
    for name in ("panopticapi", "torchmetrics"):
        print(f"  max |segcli - {name}| = {np.abs(base - scores[name]).max():.2e}")


def per_image_ms(update, images, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for image in images:
            update(*image)
        best = min(best, (time.perf_counter() - start) / len(images))
    return best * 1000


def speed() -> None:
    """512 x 512 images with about 40 segments each."""
    rng = np.random.default_rng(7)
    images = []
    for _ in range(20):
        gt, gt_segments, pred, pred_segments = random_pair(rng, size=64)
        scale = np.ones((8, 8), np.int64)
        images.append((np.kron(gt, scale), gt_segments, np.kron(pred, scale), pred_segments))
    ours, stat = PanopticQuality(CATEGORIES), new_stat()
    mine = per_image_ms(lambda g, gs, p, ps: ours.update(p, ps, g, gs), images)
    loop = per_image_ms(lambda g, gs, p, ps: pq_stat_image(stat, g, gs, p, ps), images)
    print(
        f"\nms per 512x512 image: segcli {mine:.2f}, panopticapi loop {loop:.2f}, "
        f"ratio {loop / mine:.2f}x"
    )


def main() -> None:
    rng = np.random.default_rng(0)
    agreeing = [random_pair(rng, crowd=False, pred_void=False) for _ in range(IMAGES)]
    report(f"{IMAGES} images, no crowd, no predicted VOID", three_ways(agreeing))
    everything = [random_pair(rng) for _ in range(IMAGES)]
    report(f"{IMAGES} images with crowd and predicted VOID", three_ways(everything))
    speed()


if __name__ == "__main__":
    main()
