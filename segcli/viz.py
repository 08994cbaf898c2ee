"""Palettes, overlays, colour splash and plots."""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from segcli import io
from segcli.data import IGNORE_INDEX


def voc_colormap(n: int = 256) -> np.ndarray:
    """The PASCAL VOC bit-interleave colormap [n, 3] uint8 (0 black, 1 (128,0,0), ...)."""
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


VOC_COLORMAP = voc_colormap()


def label_image(label: np.ndarray) -> Image.Image:
    """An 8-bit palette PNG image of class ids with the VOC colormap (255 stays 255)."""
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError("class ids must be in [0, 255] for a palette PNG")
    image = Image.fromarray(label.astype(np.uint8), mode="P")
    image.putpalette(VOC_COLORMAP.flatten().tolist())
    return image


def save_label_png(path: str | Path, label: np.ndarray) -> None:
    io.save_image(path, label_image(label))


def overlay(
    image: np.ndarray, label: np.ndarray, alpha: float = 0.5, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Blend class colours over the RGB image; background (0) and ignore stay untouched."""
    ids = label if label.dtype == np.uint8 else label.astype(np.int64) % 256
    colours = np.take(VOC_COLORMAP, ids, axis=0)
    painted = (label > 0) & (label != ignore_index)
    # uint8 blending and masked copy in OpenCV: 3x faster than float32 NumPy with the same
    # result, which convert-labelme (two overlays per image) feels.
    blended = cv2.addWeighted(image, 1 - alpha, colours, alpha, 0.0)
    return cv2.copyTo(blended, painted.view(np.uint8), image.copy())


def save_jpeg(path: str | Path, rgb: np.ndarray, quality: int = 90) -> None:
    io.save_image(path, Image.fromarray(rgb), quality=quality)


def draw_legend(rgb: np.ndarray, names: list[str], ids: list[int]) -> np.ndarray:
    """Class colour boxes with names in the top-left corner (for overlays)."""
    out = rgb.copy()
    scale = max(0.35, min(out.shape[:2]) / 800)
    for row, (cid, name) in enumerate(zip(ids, names)):
        y = int(6 + row * 22 * scale * 2)
        colour = tuple(int(v) for v in VOC_COLORMAP[cid % 256])
        cv2.rectangle(out, (4, y), (int(4 + 16 * scale * 2), int(y + 14 * scale * 2)), colour, -1)
        cv2.putText(
            out,
            name,
            (int(8 + 18 * scale * 2), int(y + 12 * scale * 2)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return out


def overlay_with_legend(rgb: np.ndarray, label: np.ndarray, names: Mapping[int, str]) -> np.ndarray:
    """`overlay` of `label` on `rgb` with a `draw_legend` of the ids present in `label` that
    `names` holds (leave out 0 and ignore ids to keep them off the legend), in id order."""
    ids = [int(i) for i in np.unique(label) if int(i) in names]
    return draw_legend(overlay(rgb, label), [names[i] for i in ids], ids)


def upscale(rgb: np.ndarray, min_side: int = 256) -> np.ndarray:
    """Nearest-neighbour enlargement of small images so that a person can read them."""
    factor = -(-min_side // max(1, min(rgb.shape[:2])))
    return (
        rgb
        if factor <= 1
        else cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    )


def caption_strip(width: int, text: str, colours: list[tuple[str, int]] = ()) -> np.ndarray:
    """A dark strip [22, width, 3] with `text`, then colour boxes with class names."""
    strip = np.full((22, width, 3), 32, np.uint8)
    cv2.putText(
        strip, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA
    )
    x = 8 + cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0] + 8
    for name, cid in colours:
        colour = tuple(int(v) for v in VOC_COLORMAP[cid % 256])
        cv2.rectangle(strip, (x, 5), (x + 12, 17), colour, -1)
        cv2.putText(
            strip,
            name,
            (x + 16, 15),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (230, 230, 230),
            1,
            cv2.LINE_AA,
        )
        x += 16 + cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0] + 10
    return strip


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi)
    _pyplot().close(fig)
    return buffer.getvalue()


def plot_curves(rows: list[dict], path: Path, score_name: str) -> None:
    """Training loss and validation score against iteration, one PNG."""
    plt = _pyplot()
    train = [r for r in rows if r.get("kind") == "train" and r.get("loss") is not None]
    val = [r for r in rows if r.get("kind") == "val" and r.get(score_name) is not None]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot([r["iter"] for r in train], [r["loss"] for r in train], lw=1)
    ax_loss.set(xlabel="iteration", ylabel="loss", title="training loss")
    ax_val.plot([r["iter"] for r in val], [r[score_name] for r in val], marker="o")
    ax_val.set(xlabel="iteration", ylabel=score_name, title=f"validation {score_name}")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
    io.write_bytes(path, figure_png(fig))


def confusion_png(conf: np.ndarray, names: list[str]) -> bytes:
    """Row-normalised confusion matrix (rows: ground truth) as a PNG heat map."""
    plt = _pyplot()
    rows = conf.sum(1, keepdims=True)
    norm = np.divide(conf, rows, out=np.zeros_like(conf, dtype=float), where=rows > 0)
    size = max(4.0, 0.45 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted", ylabel="ground truth", title="confusion (row-normalised)")
    if len(names) <= 25:
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(
                    j,
                    i,
                    f"{norm[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    return figure_png(fig)


def pr_curve_png(curves: Mapping[str, Mapping[str, list[float]]]) -> bytes:
    """Precision against recall, one panel per kind (e.g. "mask", "box"), one line per IoU
    threshold: `curves[kind][label]` holds the precision at recall 0, 0.01, ..., 1 (NaN where
    no category has ground truth)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4), squeeze=False)
    for ax, (kind, lines) in zip(axes[0], curves.items()):
        for label, precision in lines.items():
            values = np.asarray(precision, dtype=float)
            recall = np.linspace(0, 1, len(values))
            ax.plot(recall, values, lw=2, label=label)
        ax.set(xlabel="recall", ylabel="precision", title=f"{kind} precision-recall",
               xlim=(0, 1), ylim=(0, 1.02))  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
    return figure_png(fig)


def bar_chart_png(names: list[str], series: Mapping[str, list[float]], title: str) -> bytes:
    """Horizontal bars, one group per name, one bar per series (e.g. mask AP, box AP); a
    value that is NaN (nothing to score) is written as n/a."""
    plt = _pyplot()
    height = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.3 * len(names) * len(series) + 1.2)))
    y = np.arange(len(names))
    for k, (label, values) in enumerate(series.items()):
        values = np.asarray(values, dtype=float)
        rows = y + (k - (len(series) - 1) / 2) * height
        ax.barh(rows, np.nan_to_num(values), height, label=label)
        for row, value in zip(rows, values):
            text = "n/a" if np.isnan(value) else f"{value:.3f}"
            ax.text(max(np.nan_to_num(value), 0) + 0.01, row, text, va="center", fontsize=7)
    ax.set_yticks(y, names)
    ax.invert_yaxis()  # first class on top
    ax.set(xlim=(0, 1.12), title=title)
    ax.grid(axis="x", alpha=0.3)
    if len(series) > 1:
        ax.legend(loc="lower right")
    return figure_png(fig)


# error_overlay's colours and what they mean (the report's legend)
ERROR_COLOURS = {
    "false positive (object predicted on background)": (255, 40, 40),
    "false negative (object predicted as background)": (30, 144, 255),
    "wrong class": (255, 200, 0),
}


def error_overlay(
    image: np.ndarray, truth: np.ndarray, pred: np.ndarray, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """The RGB image [H, W, 3] in faded grey with each wrongly labelled pixel of the class maps
    `truth` and `pred` [H, W] (0 background) in its ERROR_COLOURS colour; pixels whose truth
    is `ignore_index` count as right."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    out = cv2.cvtColor((128 + grey // 2).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    wrong = (truth != pred) & (truth != ignore_index)
    kinds = (wrong & (truth == 0), wrong & (pred == 0), wrong & (truth != 0) & (pred != 0))
    for where, colour in zip(kinds, ERROR_COLOURS.values()):
        out[where] = colour
    return out


def instance_colours(n: int) -> np.ndarray:
    """`n` distinct bright colours [n, 3] uint8, hues spaced by the golden ratio (fixed order)."""
    hues = (np.arange(max(n, 1)) * 0.618033988749895) % 1.0
    hsv = np.stack([hues * 180, np.full_like(hues, 200), np.full_like(hues, 255)], 1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0][:n]


def draw_instances(
    image: np.ndarray,
    masks: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    class_names,
    scores: np.ndarray | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Each instance (masks [N,H,W] bool, boxes [N,4] xyxy) in its own colour: the mask
    blended in, the box, and `name score` above it."""
    out = image.copy()
    colours = instance_colours(len(masks))
    for mask, colour in zip(masks, colours):
        out[mask] = ((1 - alpha) * out[mask] + alpha * colour).round().astype(np.uint8)
    scale = max(0.35, min(image.shape[:2]) / 700)
    for i, (box, colour) in enumerate(zip(boxes, colours)):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        bgr = tuple(int(v) for v in colour)
        cv2.rectangle(out, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), bgr, 1)
        text = class_names[int(labels[i])] + (f" {scores[i]:.2f}" if scores is not None else "")
        cv2.putText(
            out, text, (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, scale, bgr, 1, cv2.LINE_AA
        )
    return out


def colour_splash(image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Matterport's colour splash: the RGB image in greyscale except inside any of the masks
    [N, H, W] (bool), where it keeps its colours."""
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    inside = masks.any(0) if len(masks) else np.zeros(image.shape[:2], bool)
    return np.where(inside[..., None], image, grey)
