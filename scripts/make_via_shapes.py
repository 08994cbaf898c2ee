"""Write the built-in shapes as a VIA 2.x dataset in matterport's balloon layout:
OUT/{train,val}/via_region_data.json with the JPEGs beside it, each shape a polygon region
traced from its mask (OpenCV contours) with a `shape` region attribute (`--label NAME`: that
name for every region; `--keep KIND`: only shapes of that kind are regions, the rest stay
unlabelled), and OUT/clip.mp4 made of the val images. Input for the README's "Fine-tune on
your own data" walkthrough."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from segcli.data.shapes import CLASS_NAMES, ShapesDataset


def polygon(mask: np.ndarray) -> tuple[list[int], list[int]]:
    """The outline of the largest connected part of a bool mask [H, W] as VIA point lists."""
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    points = max(contours, key=cv2.contourArea)[:, 0]
    return points[:, 0].tolist(), points[:, 1].tolist()


def write_split(out: Path, split: str, count: int, size: int, label=None, keep=None) -> list:
    """Write one split; returns its images."""
    shapes = ShapesDataset(split, size, count, seed=1)
    folder = out / split
    folder.mkdir(parents=True, exist_ok=True)
    entries, images = {}, []
    for i in range(count):
        sample = shapes.load(i)
        name = f"{sample['name']}.jpg"
        Image.fromarray(sample["image"]).save(folder / name, quality=95)
        images.append(sample["image"])
        regions = []
        for instance in sample["instances"]:
            kind = CLASS_NAMES[instance["label"]]
            if keep and kind != keep:
                continue
            xs, ys = polygon(instance["mask"])
            if len(xs) < 3:
                continue
            shape = {"name": "polygon", "all_points_x": xs, "all_points_y": ys}
            attributes = {"shape": label or kind}
            regions.append({"shape_attributes": shape, "region_attributes": attributes})
        size_bytes = (folder / name).stat().st_size
        entries[f"{name}{size_bytes}"] = {
            "filename": name,
            "size": size_bytes,
            "regions": regions,
            "file_attributes": {},
        }
    (folder / "via_region_data.json").write_text(json.dumps(entries))
    return images


def write_clip(path: Path, frames: list) -> None:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 2, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--val", type=int, default=10)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--label", help="one class name for every region")
    parser.add_argument("--keep", choices=CLASS_NAMES[1:], help="annotate only this kind")
    args = parser.parse_args()
    write_split(args.out, "train", args.train, args.size, args.label, args.keep)
    frames = write_split(args.out, "val", args.val, args.size, args.label, args.keep)
    write_clip(args.out / "clip.mp4", frames)
    print(f"wrote {args.train} + {args.val} images and clip.mp4 to {args.out}")


if __name__ == "__main__":
    main()
