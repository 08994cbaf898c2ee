"""`segcli superpixels`: SLIC label maps and boundary overlays of images and, with ground-truth
masks, boundary recall and undersegmentation error (segcli.ops.superpixels)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from segcli import io
from segcli.data import IGNORE_INDEX
from segcli.data.images import collect_sources, is_video, list_images, read_image, read_mask
from segcli.errors import ConfigError, DataError
from segcli.ops import superpixels as sp
from segcli.viz import save_jpeg

MAX_LABELS = 2**16  # the label map is a 16-bit PNG


@dataclass(frozen=True)
class SlicSpec:
    n_segments: int = sp.N_SEGMENTS
    compactness: float = sp.COMPACTNESS
    tolerance: int = sp.BOUNDARY_TOLERANCE  # boundary recall's d, pixels
    ignore_index: int = IGNORE_INDEX


def run_superpixels(
    sources: list[Path], spec: SlicSpec, out_dir: Path, gt_dir: Path | None, console: Console
) -> list[dict]:
    """Write `<stem>.png` (16-bit superpixel ids 0..S-1) and `<stem>_overlay.jpg` per image
    into `out_dir`; return one row per image (name, superpixels and, with `gt_dir`, the two
    scores). Names, mask pairs and sizes are checked before anything is written."""
    _check_spec(spec)
    images = [_image_only(p) for p in collect_sources(sources)]
    masks = _pair_masks(images, gt_dir) if gt_dir is not None else [None] * len(images)
    _check_no_overwrite(images + [m for m in masks if m is not None], images, out_dir)
    problem = io.check_writable(out_dir)
    if problem:
        raise DataError(problem)
    rows = [_one_image(image, mask, spec, out_dir) for image, mask in zip(images, masks)]
    console.print(results_table(rows, gt_dir is not None))
    return rows


def _check_spec(spec: SlicSpec) -> None:
    if spec.n_segments < 1:
        raise ConfigError(f"--n-segments must be at least 1, got {spec.n_segments}")
    if not spec.compactness > 0:
        raise ConfigError(f"--compactness must be positive, got {spec.compactness}")
    if spec.tolerance < 0:
        raise ConfigError(f"--tolerance must be 0 or more pixels, got {spec.tolerance}")


def _check_no_overwrite(inputs: list[Path], images: list[Path], out_dir: Path) -> None:
    """No output file (`<stem>.png`, `<stem>_overlay.jpg`) may be one of the inputs."""
    names = [f"{p.stem}{suffix}" for p in images for suffix in (".png", "_overlay.jpg")]
    outputs = {(out_dir / name).resolve() for name in names}
    for path in inputs:
        if path.resolve() in outputs:
            raise DataError(f"{path}: --out {out_dir} would overwrite this input")


def _image_only(path: Path) -> Path:
    if is_video(path):
        raise DataError(f"{path}: superpixels takes images, not videos")
    return path


def _pair_masks(images: list[Path], gt_dir: Path) -> list[Path]:
    """The mask of each image, by file stem, its size checked from the file headers."""
    if not gt_dir.is_dir():
        raise DataError(f"{gt_dir}: mask folder not found")
    masks = {p.stem: p for p in list_images(gt_dir)}
    paired = []
    for image in images:
        mask = masks.get(image.stem)
        if mask is None:
            raise DataError(f"{image}: no mask with its stem in {gt_dir}")
        image_size, mask_size = _header_size(image), _header_size(mask)
        if image_size is not None and mask_size is not None and image_size != mask_size:
            raise DataError(
                f"{mask}: mask is {mask_size[0]}x{mask_size[1]} but {image.name} is "
                f"{image_size[0]}x{image_size[1]}"
            )
        paired.append(mask)
    return paired


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) upright, without decoding; None when unreadable (decoding says why)."""
    try:
        with Image.open(path) as im:
            turned = im.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF: a quarter turn
            return im.size[::-1] if turned else im.size
    except (OSError, SyntaxError, ValueError):
        return None


def _one_image(path: Path, mask_path: Path | None, spec: SlicSpec, out_dir: Path) -> dict:
    rgb = read_image(path)
    labels = sp.slic(rgb, spec.n_segments, spec.compactness)
    count = int(labels.max()) + 1
    if count > MAX_LABELS:
        raise DataError(f"{path}: {count} superpixels do not fit a 16-bit PNG; lower --n-segments")
    row = {"image": str(path), "superpixels": count}
    if mask_path is not None:
        gt = read_mask(mask_path)
        if gt.shape != labels.shape:
            raise DataError(f"{mask_path}: mask is not the size of {path.name}")
        row["boundary_recall"] = sp.boundary_recall(labels, gt, spec.tolerance, spec.ignore_index)
        row["undersegmentation_error"] = sp.undersegmentation_error(labels, gt, spec.ignore_index)
    io.save_image(out_dir / f"{path.stem}.png", Image.fromarray(labels.astype(np.uint16)))
    save_jpeg(out_dir / f"{path.stem}_overlay.jpg", sp.boundary_overlay(rgb, labels))
    return row


def mean_row(rows: list[dict]) -> dict:
    """The mean of each score over the images that have one (NaN: no ground-truth boundary)."""
    mean = {"superpixels": float(np.mean([r["superpixels"] for r in rows]))}
    for key in ("boundary_recall", "undersegmentation_error"):
        values = [r[key] for r in rows if key in r and not math.isnan(r[key])]
        if any(key in r for r in rows):
            mean[key] = float(np.mean(values)) if values else math.nan
    return mean


def results_table(rows: list[dict], scored: bool) -> Table:
    table = Table(title="SLIC superpixels")
    columns = ["image", "superpixels"] + (["boundary recall", "underseg. error"] if scored else [])
    for column in columns:
        table.add_column(column, justify="left" if column == "image" else "right")
    for row in [*rows, {"image": "mean", **mean_row(rows)}]:
        cells = [Path(row["image"]).name, f"{row['superpixels']:g}"]
        if scored:
            cells += [_fmt(row["boundary_recall"]), _fmt(row["undersegmentation_error"])]
        table.add_row(*cells)
    return table


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"
