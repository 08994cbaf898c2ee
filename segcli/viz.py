"""Palettes, overlays, colour splash and plots."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from segcli import io


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
    image: np.ndarray, label: np.ndarray, alpha: float = 0.5, ignore_index: int = 255
) -> np.ndarray:
    """Blend class colours over the RGB image; background (0) and ignore stay untouched."""
    colours = VOC_COLORMAP[label.astype(np.int64) % 256]
    painted = (label > 0) & (label != ignore_index)
    out = image.astype(np.float32)
    out[painted] = (1 - alpha) * out[painted] + alpha * colours[painted]
    return out.round().astype(np.uint8)


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


def plot_curves(rows: list[dict], path: Path, score_name: str) -> None:
    """Training loss and validation score against iteration, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in rows if r.get("kind") == "train" and r.get("loss") is not None]
    val = [r for r in rows if r.get("kind") == "val" and r.get(score_name) is not None]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot([r["iter"] for r in train], [r["loss"] for r in train], lw=1)
    ax_loss.set(xlabel="iteration", ylabel="loss", title="training loss")
    ax_val.plot([r["iter"] for r in val], [r[score_name] for r in val], marker="o")
    ax_val.set(xlabel="iteration", ylabel=score_name, title=f"validation {score_name}")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    io.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


def plot_confusion(conf: np.ndarray, names: list[str], path: Path) -> None:
    """Row-normalised confusion matrix (rows: ground truth) as a PNG heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    io.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
