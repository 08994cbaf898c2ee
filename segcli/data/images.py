"""Reading images and label masks, with errors that name the file and the problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from segcli.data.labels import out_of_range_problem, size_problem
from segcli.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # uint8 [H, W, 3], with the EXIF orientation applied
    orientation: int | None  # the EXIF orientation tag that was applied (2..8), else None
    mode: str  # the source's PIL mode ("RGB", "L", "CMYK", ...)


def decode_image(source: str | Path | IO[bytes], name: str | Path) -> DecodedImage:
    """Open `source` (a path or a binary file object) once and decode it; errors are one
    DataError line starting with `name`, the image as the user knows it."""
    try:
        with Image.open(source) as im:
            mode = im.mode  # before decoding, as the file declares it
            rgb = np.array(ImageOps.exif_transpose(im).convert("RGB"))  # writable
            orientation = im.getexif().get(EXIF_ORIENTATION)  # the tag exif_transpose read
    except FileNotFoundError:
        raise DataError(f"{name}: image not found") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{name}: {_too_large(exc)}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{name}: cannot decode image ({exc.__class__.__name__})") from None
    return DecodedImage(rgb, orientation if orientation in range(2, 9) else None, mode)


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 [H, W, 3], with the EXIF orientation applied (as labelme shows the image)."""
    return decode_image(path, path).rgb


def _too_large(exc: Exception) -> str:
    """Pillow refuses images over 2 x Image.MAX_IMAGE_PIXELS (a decompression bomb guard)."""
    detail = str(exc).split(",")[0]  # "Image size (N pixels) exceeds limit of M pixels"
    return f"image too large to decode ({detail})"


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) as segcli shows the image (EXIF orientation applied), from its header."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            turned = im.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8)  # width and height swap
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc.__class__.__name__})") from None
    return (width, height) if turned else (height, width)


def exif_rotation(path: str | Path) -> int | None:
    """The EXIF orientation tag (2..8) when the image must be turned to be seen upright."""
    try:
        with Image.open(path) as im:
            value = im.getexif().get(EXIF_ORIENTATION)
    except (OSError, SyntaxError, ValueError):
        return None
    return value if value in range(2, 9) else None


def read_mask(path: str | Path) -> np.ndarray:
    """Class ids [H, W] from a palette or grey PNG (uint8, or int32 for 16-bit files).

    An RGB mask holds colours, not class ids: that is an error with the fix in it.
    """
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("RGB", "RGBA"):
                raise DataError(
                    f"{path}: RGB mask, expected class ids (a palette or grey PNG); "
                    "convert the colours to ids first"
                )
            if mode == "LA":
                im = im.getchannel(0)
            array = np.array(im)  # writable: torch.from_numpy warns on read-only arrays
    except FileNotFoundError:
        raise DataError(f"{path}: mask not found") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: {_too_large(exc)}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode mask ({exc.__class__.__name__})") from None
    if array.dtype == bool:
        array = array.astype(np.uint8)
    return array if array.dtype == np.uint8 else array.astype(np.int32)


def check_mask(
    mask: np.ndarray, image_shape: tuple, num_classes: int, ignore_index: int, path: str | Path
) -> None:
    """Raise DataError if the mask's size or values do not fit the image and class count."""
    problem = size_problem(mask.shape, image_shape)
    if problem is None and mask.size and int(mask.max()) >= num_classes:
        problem = out_of_range_problem(np.unique(mask), num_classes, ignore_index)
    if problem:
        raise DataError(f"{path}: {problem}")


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


# The videos segcli reads and writes, with the codec OpenCV's bundled FFmpeg writes for each.
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_CODECS


def collect_sources(sources: list[Path]) -> list[Path]:
    """Image and video files named directly or found (non-recursively) in named folders."""
    files = []
    for source in sources:
        if source.is_dir():
            found = sorted(list_images(source) + [p for p in source.iterdir() if is_video(p)])
            if not found:
                raise DataError(
                    f"{source}: no images or videos ({', '.join(VIDEO_CODECS)}) in the folder"
                )
            files.extend(found)
        elif source.is_file():
            files.append(source)
        else:
            raise DataError(f"{source}: no such file or folder")
    stems = [f.stem for f in files]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        raise DataError(f"{clash[0]}: several inputs share this file stem; outputs would collide")
    return files
