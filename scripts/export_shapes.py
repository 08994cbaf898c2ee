"""Write a few images of the built-in shapes val split to a folder (input for `segcli infer`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from segcli.data.shapes import ShapesDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    shapes = ShapesDataset("val", args.size, args.count)
    for i in range(args.count):
        sample = shapes.load(i)
        Image.fromarray(sample["image"]).save(args.out / f"{sample['name']}.png")
    print(f"wrote {args.count} images to {args.out}")


if __name__ == "__main__":
    main()
