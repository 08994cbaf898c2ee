"""The k worst images of an evaluation, drawn for the HTML report (segcli/report/html.py).

Semantic images rank by their own mIoU: the mean IoU over the classes in the image's ground
truth or prediction. Instance images rank by their mask F1 at IoU 0.5, 2 TP / (2 TP + FP + FN),
over the detections scoring at least SCORE_THRESHOLD (infer's default), matched greedily by
score to a same-category object as COCOeval does; a detection matching a crowd region counts as
neither. An image with nothing to find and nothing found scores 1. Equal scores keep the
dataset's order. Each worst image gets three panels: ground truth, prediction and the error
overlay (viz.error_overlay: false positives and false negatives of the class maps).

Torch is not imported here (the model pass of `worst_semantic` goes through a task), so
`eval --gt-json` stays light.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from io import BytesIO

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from segcli import viz
from segcli.report.html import Example

SCORE_THRESHOLD = 0.5
MATCH_IOU = 0.5
SEMANTIC_RANKING = (
    "Ranked by the image's own mIoU (over the classes in its ground truth or prediction)."
)
INSTANCE_RANKING = (
    f"Ranked by the image's mask F1 at IoU {MATCH_IOU} over detections scoring at least "
    f"{SCORE_THRESHOLD}, matched greedily by score within a category (crowd regions ignored)."
)


class Lowest:
    """The k items with the lowest scores added so far; equal scores keep their order."""

    def __init__(self, k: int):
        self.k, self.heap, self.count = k, [], 0

    def add(self, score: float, item) -> None:
        if self.k <= 0:
            return
        entry = (-score, -self.count, item)  # the heap's top is the highest score, latest
        self.count += 1
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, entry)
        elif entry[:2] > self.heap[0][:2]:
            heapq.heapreplace(self.heap, entry)

    def items(self) -> list[tuple[float, object]]:
        """(score, item) pairs, lowest score first."""
        return [(-s, item) for s, _, item in sorted(self.heap, key=lambda e: e[:2], reverse=True)]


def image_miou(truth: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int) -> float:
    """Mean IoU [0, 1] of one image's class maps [H, W] over the classes either holds."""
    keep = truth != ignore_index
    pairs = truth[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    conf = np.bincount(pairs, minlength=num_classes**2).reshape(num_classes, num_classes)
    inter, union = np.diag(conf), conf.sum(0) + conf.sum(1) - np.diag(conf)
    present = union > 0
    return float(np.mean(inter[present] / union[present])) if present.any() else 1.0


def jpeg(rgb: np.ndarray) -> bytes:
    buffer = BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def display_scale(height: int, width: int) -> float:
    """Small images grow to a readable 256 px side, large ones shrink to a 512 px side."""
    return min(max(1.0, 256 / min(height, width)), 512 / max(height, width))


def resize(array: np.ndarray, scale: float, nearest: bool = True) -> np.ndarray:
    if scale == 1:
        return array
    h, w = array.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    smooth = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(array, size, interpolation=cv2.INTER_NEAREST if nearest else smooth)


def semantic_example(name, score, image, truth, pred, ignore_index: int) -> Example:
    """Panels of one semantic image: ground truth and prediction overlays, errors."""
    scale = display_scale(*truth.shape)
    image = resize(image, scale, nearest=False)
    truth, pred = resize(truth, scale), resize(pred, scale)
    panels = {
        "ground truth": viz.overlay(image, truth, ignore_index=ignore_index),
        "prediction": viz.overlay(image, pred, ignore_index=ignore_index),
        "errors": viz.error_overlay(image, truth, pred, ignore_index),
    }
    return Example(name, f"image mIoU {score:.3f}", {k: jpeg(v) for k, v in panels.items()})


def worst_semantic(task, model, source, num_classes: int, device, k: int, cfg) -> list:
    """The k worst images of a semantic source ({load(i) -> image, mask, name}) under `model`,
    predicted by `task` (segcli.tasks: the eval's, e.g. with --tta), as report Examples.
    `cfg` gives ignore_index and binary (0/255 masks)."""
    from segcli.data.labels import binary_ids

    if k <= 0:
        return []
    lowest = Lowest(k)
    for index in range(len(source)):
        sample = source.load(index)
        truth = binary_ids(sample["mask"]) if cfg.binary else sample["mask"]
        (pred,) = task.predict(model, [sample["image"]], device)
        score = image_miou(truth, pred, num_classes, cfg.ignore_index)
        lowest.add(score, (sample["name"], sample["image"], truth, pred))
    return [
        semantic_example(name, score, image, truth, pred, cfg.ignore_index)
        for score, (name, image, truth, pred) in lowest.items()
    ]


def worst_label_pairs(pairs, num_classes: int, ignore_index: int, k: int) -> list:
    """The k worst of (name, truth, pred) label maps (eval --pred/--gt: no image, a grey
    background)."""
    if k <= 0:
        return []
    lowest = Lowest(k)
    for name, truth, pred in pairs:
        lowest.add(image_miou(truth, pred, num_classes, ignore_index), (name, truth, pred))
    return [
        semantic_example(name, score, blank(truth.shape), truth, pred, ignore_index)
        for score, (name, truth, pred) in lowest.items()
    ]


def blank(shape) -> np.ndarray:
    """A mid-grey RGB canvas [H, W, 3] where the image itself is not at hand."""
    return np.full((*shape[:2], 3), 160, np.uint8)


def image_f1(gt, image_id: int, detections: list[dict]) -> tuple[float, int, int, int]:
    """(mask F1, TP, FP, FN) of one image's detections (COCO results with an RLE
    segmentation) against `gt` (a pycocotools COCO). Within each category, detections in
    score order take the unmatched object they overlap most (IoU >= MATCH_IOU); one that
    matches only a crowd region is ignored, as in COCOeval."""
    objects, found = defaultdict(list), defaultdict(list)
    for ann in gt.imgToAnns[image_id]:
        objects[ann["category_id"]].append(ann)
    for det in detections:
        found[det["category_id"]].append(det)
    tp = fp = fn = 0
    for category in objects.keys() | found.keys():
        anns = objects[category]
        dets = sorted(found[category], key=lambda d: -d["score"])
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)
        ious = np.zeros((len(dets), len(anns)))
        if dets and anns:
            rles = [gt.annToRLE(a) for a in anns]
            ious[:] = mask_utils.iou([d["segmentation"] for d in dets], rles, crowd.tolist())
        matched = np.zeros(len(anns), bool)
        for row in ious:
            free = np.where(~crowd & ~matched & (row >= MATCH_IOU), row, -1)
            if free.max(initial=-1) >= 0:
                matched[int(free.argmax())] = True
                tp += 1
            elif not (crowd & (row >= MATCH_IOU)).any():
                fp += 1
        fn += int((~crowd & ~matched).sum())
    errors = 2 * tp + fp + fn
    return (2 * tp / errors if errors else 1.0), tp, fp, fn


def worst_instances(gt, results, k: int, class_names, category_ids, load_image=None) -> list:
    """The k worst images of `gt` (pycocotools COCO) under COCO `results` with RLE masks, as
    report Examples; `load_image(image_id)` gives the RGB image (None: a grey background)."""
    if k <= 0:
        return []
    kept = defaultdict(list)
    for r in results:
        if r["score"] >= SCORE_THRESHOLD:
            kept[r["image_id"]].append(r)
    lowest = Lowest(k)
    for entry in sorted(gt.dataset["images"], key=lambda img: img["id"]):
        f1, tp, fp, fn = image_f1(gt, entry["id"], kept[entry["id"]])
        lowest.add(f1, (entry, f"mask F1@{MATCH_IOU} {f1:.3f} (TP {tp}, FP {fp}, FN {fn})"))
    labels = {cid: i for i, cid in enumerate(category_ids, start=1)}
    examples = []
    for _, (entry, caption) in lowest.items():
        image = load_image(entry["id"]) if load_image else blank((entry["height"], entry["width"]))
        panels = instance_panels(gt, entry, kept[entry["id"]], image, labels, class_names)
        examples.append(Example(entry["file_name"], caption, panels))
    return examples


def instance_panels(gt, entry: dict, detections, image, labels: dict, class_names) -> dict:
    """Ground truth and prediction drawn as instances, and the error overlay of their class
    maps (crowd regions ignored), as JPEG bytes."""
    scale = display_scale(entry["height"], entry["width"])
    image = resize(image, scale, nearest=False)
    anns = list(gt.imgToAnns[entry["id"]])
    dets = sorted(detections, key=lambda d: d["score"])  # the most confident drawn on top
    truth_masks = [resize(gt.annToMask(a), scale).astype(bool) for a in anns]
    pred_masks = [resize(mask_utils.decode(d["segmentation"]), scale).astype(bool) for d in dets]
    crowd = [bool(a.get("iscrowd", 0)) for a in anns]
    truth_ids = [255 if c else labels[a["category_id"]] for a, c in zip(anns, crowd)]
    truth = class_map(truth_masks, truth_ids, image.shape[:2])
    pred = class_map(pred_masks, [labels[d["category_id"]] for d in dets], image.shape[:2])
    objects = [i for i, c in enumerate(crowd) if not c]
    drawn = {
        "ground truth": drawing(
            image,
            [truth_masks[i] for i in objects],
            [anns[i]["bbox"] for i in objects],
            [truth_ids[i] for i in objects],
            class_names,
            scale,
        ),
        "prediction": drawing(
            image,
            pred_masks,
            [d.get("bbox") or mask_utils.toBbox(d["segmentation"]).tolist() for d in dets],
            [labels[d["category_id"]] for d in dets],
            class_names,
            scale,
            [d["score"] for d in dets],
        ),
        "errors": viz.error_overlay(image, truth, pred),
    }
    return {title: jpeg(rgb) for title, rgb in drawn.items()}


def class_map(masks, ids, shape) -> np.ndarray:
    """Class ids [H, W] (uint8) painted from masks in order, later ones on top."""
    label = np.zeros(shape, np.uint8)
    for mask, value in zip(masks, ids):
        label[mask] = value
    return label


def drawing(image, masks, boxes_xywh, ids, class_names, scale: float, scores=None):
    """viz.draw_instances of masks [H, W] and COCO boxes (xywh, image pixels) at `scale`."""
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes_xywh], float).reshape(-1, 4)
    return viz.draw_instances(
        image,
        np.array(masks, bool).reshape(-1, *image.shape[:2]),
        boxes * scale,
        np.array(ids, np.int64),
        class_names,
        None if scores is None else np.array(scores),
    )
