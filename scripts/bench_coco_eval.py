"""COCO mask AP of 10,000 detections: `segcli eval --gt-json --pred-json` as a whole process
against a bare pycocotools script, side by side.

The generated set: 500 images of 480 x 640 with 20 categories under non-contiguous ids, about
8 objects an image (polygons of small, medium and large ellipses and rectangles) and a crowd
region (uncompressed RLE) in every other image; 10,000 mask detections (compressed RLEs in
COCO's segm result format): jittered copies of the objects, some with the wrong class, and
false positives. Each measurement starts a fresh Python process (imports and file reading
count, as a user waits for them); the two commands alternate, REPEATS times, so load on a
shared machine hits both alike. It prints the median wall times and their ratio, and the
largest difference between the 12 numbers of segcli (faster-coco-eval) and pycocotools, for
segm and for bbox results of the same detections.

    .venv/bin/python scripts/bench_coco_eval.py [--repeats 5] [--images 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

H, W, DETECTIONS = 480, 640, 10_000
CATEGORY_IDS = [1 + 4 * i for i in range(20)]  # 1, 5, 9, ...: gaps as in COCO's 1..90
STATS = ("ap", "ap50", "ap75", "ap_s", "ap_m", "ap_l",
         "ar1", "ar10", "ar100", "ar_s", "ar_m", "ar_l")  # fmt: skip

PYCOCOTOOLS = """
import json, sys
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
gt = COCO(sys.argv[1])
evaluator = COCOeval(gt, gt.loadRes(sys.argv[2]), sys.argv[3])
evaluator.evaluate()
evaluator.accumulate()
evaluator.summarize()
with open(sys.argv[4], "w") as f:
    json.dump([float(v) for v in evaluator.stats], f)
"""


def shape_polygon(rng, cx, cy, rx, ry) -> list[float]:
    """An ellipse (24 points) or a rectangle as one COCO polygon, clipped to the image."""
    if rng.random() < 0.5:
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        xs, ys = cx + rx * np.cos(t), cy + ry * np.sin(t)
    else:
        xs, ys = cx + np.array([-rx, rx, rx, -rx]), cy + np.array([-ry, -ry, ry, ry])
    xs, ys = np.clip(xs, 0, W - 1), np.clip(ys, 0, H - 1)
    return np.stack([xs, ys], 1).round(1).ravel().tolist()


def rle_of(polygon: list[float]) -> dict:
    return mask_utils.merge(mask_utils.frPyObjects([polygon], H, W))


def generate(images: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """(ground truth document, segm results) as described in the module docstring."""
    rng = np.random.default_rng(seed)
    doc = {"images": [], "annotations": [], "categories": []}
    doc["categories"] = [{"id": c, "name": f"class{c}"} for c in CATEGORY_IDS]
    objects = []  # (image id, category, centre, radii) of every non-crowd object
    for image_id in range(1, images + 1):
        doc["images"].append({"id": image_id, "file_name": f"{image_id:06d}.jpg",
                              "height": H, "width": W})  # fmt: skip
        for _ in range(int(rng.integers(4, 13))):
            radius = float(rng.choice([rng.uniform(4, 14), rng.uniform(18, 50),
                                       rng.uniform(60, 150)]))  # fmt: skip
            centre = (rng.uniform(0, W), rng.uniform(0, H))
            obj = (image_id, int(rng.choice(CATEGORY_IDS)), *centre, radius,
                   radius * rng.uniform(0.5, 1.5))  # fmt: skip
            polygon = shape_polygon(rng, *obj[2:])
            add_annotation(doc, obj[0], obj[1], [polygon], rle_of(polygon), crowd=0)
            objects.append(obj)
        if image_id % 2:
            add_crowd(doc, rng, image_id)
    results = [detection(rng, objects[int(rng.integers(len(objects)))]) for _ in range(DETECTIONS)]
    return doc, results


def add_annotation(doc, image_id, category, segmentation, rle, crowd) -> None:
    doc["annotations"].append({
        "id": len(doc["annotations"]) + 1, "image_id": image_id, "category_id": category,
        "segmentation": segmentation, "area": float(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": crowd,
    })  # fmt: skip


def add_crowd(doc, rng, image_id) -> None:
    """A crowd region as COCO stores them: an uncompressed RLE (column-major run lengths)."""
    mask = np.zeros((H, W), np.uint8)
    x, y = int(rng.integers(0, W - 200)), int(rng.integers(0, H - 150))
    mask[y : y + int(rng.integers(60, 150)), x : x + int(rng.integers(80, 200))] = 1
    flat = mask.T.ravel()
    change = np.flatnonzero(np.diff(np.r_[0, flat, 0]))
    counts = np.diff(np.r_[0, change, flat.size]).tolist()
    rle = mask_utils.encode(np.asfortranarray(mask))
    add_annotation(doc, image_id, int(rng.choice(CATEGORY_IDS)), {"size": [H, W],
                   "counts": counts}, rle, crowd=1)  # fmt: skip


def detection(rng, obj) -> dict:
    """A jittered copy of an object (sometimes of another class, sometimes far off)."""
    image_id, category, cx, cy, rx, ry = obj
    shift = rng.normal(0, 0.15, 4) * [rx, ry, rx, ry]
    if rng.random() < 0.1:
        category = int(rng.choice(CATEGORY_IDS))
    if rng.random() < 0.15:
        shift[:2] += rng.uniform(-200, 200, 2)
    polygon = shape_polygon(rng, cx + shift[0], cy + shift[1], max(2, rx + shift[2]),
                            max(2, ry + shift[3]))  # fmt: skip
    rle = rle_of(polygon)
    return {
        "image_id": image_id,
        "category_id": category,
        "score": round(float(rng.random()), 4),
        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
    }


def as_box(result: dict) -> dict:
    """The bbox result of the same detection: its mask's enclosing box."""
    box = [float(v) for v in mask_utils.toBbox(result["segmentation"])]
    return {k: v for k, v in result.items() if k != "segmentation"} | {"bbox": box}


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def segcli_eval(folder: Path, results: str, metric: str, out: str) -> list[str]:
    return [sys.executable, "-m", "segcli", "eval", "--gt-json", "gt.json", "--pred-json",
            results, "--metric", metric, "--json", out]  # fmt: skip


def max_difference(folder: Path, kind: str, iou_type: str, results: str) -> float:
    """The largest |segcli - pycocotools| over the 12 numbers of one kind."""
    subprocess.run(segcli_eval(folder, results, f"{kind}-ap", f"{kind}.json"), cwd=folder,
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([sys.executable, "bare.py", "gt.json", results, iou_type, f"ref_{kind}.json"],
                   cwd=folder, check=True, capture_output=True)  # fmt: skip
    ours = json.loads((folder / f"{kind}.json").read_text())
    theirs = json.loads((folder / f"ref_{kind}.json").read_text())
    return max(abs(ours[f"{kind}_{s}"] - ref) for s, ref in zip(STATS, theirs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        doc, results = generate(args.images)
        boxes = [as_box(r) for r in results]
        for name, obj in (("gt", doc), ("segm", results), ("bbox", boxes)):
            (folder / f"{name}.json").write_text(json.dumps(obj))
        (folder / "bare.py").write_text(PYCOCOTOOLS)
        crowds = sum(a["iscrowd"] for a in doc["annotations"])
        print(f"{args.images} images, {len(doc['annotations'])} objects ({crowds} crowd), "
              f"{len(results)} mask detections; {args.repeats} alternating repeats")  # fmt: skip
        bare = [sys.executable, "bare.py", "gt.json", "segm.json", "segm", "ref.json"]
        ours = segcli_eval(folder, "segm.json", "mask-ap", "ours.json")
        times = {"pycocotools script": [], "segcli eval": []}
        for _ in range(args.repeats):
            times["pycocotools script"].append(timed(bare, folder))
            times["segcli eval"].append(timed(ours, folder))
        medians = {name: statistics.median(t) for name, t in times.items()}
        for name, t in times.items():
            print(f"{name:<20} median {medians[name]:6.2f} s  ({', '.join(f'{v:.2f}' for v in t)})")
        ratio = medians["pycocotools script"] / medians["segcli eval"]
        print(f"segcli eval is {ratio:.2f}x as fast as the bare pycocotools script")
        for kind, iou_type in (("mask", "segm"), ("box", "bbox")):
            gap = max_difference(folder, kind, iou_type, f"{iou_type}.json")
            print(f"{iou_type}: max |segcli - pycocotools| over the 12 numbers = {gap:.3g}")


if __name__ == "__main__":
    main()
