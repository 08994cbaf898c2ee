"""The image of a labelme file: embedded `imageData` wins over `imagePath` (which may be wrong),
`imagePath` is relative to the JSON and may use backslashes, EXIF orientation is applied."""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import numpy as np

from segcli.data.images import decode_image
from segcli.errors import DataError

JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class LabelmeImage:
    rgb: np.ndarray  # [H, W, 3] uint8 in the frame labelme shows (EXIF orientation applied)
    data: bytes  # the encoded source image
    orientation: int | None  # the EXIF orientation tag that was applied (2..8), else None
    mode: str  # the source image's PIL mode
    path: Path | None = None  # the image file read; None for embedded imageData

    @property
    def upright_jpeg(self) -> bool:
        """The source bytes are an RGB JPEG needing no turn: they can be copied verbatim."""
        return not self.orientation and self.mode == "RGB" and self.data.startswith(JPEG_MAGIC)


def load_image(json_path: Path, record: dict) -> LabelmeImage:
    """Decode the labelme file's image and check it against imageHeight / imageWidth."""
    data, path = _image_bytes(json_path, record)
    source = str(path) if path else "embedded imageData"
    try:
        decoded = decode_image(io.BytesIO(data), source)
    except DataError as exc:  # "<source>: cannot decode image (...)" or "... too large ..."
        raise DataError(f"{json_path}: {exc}") from None
    image = LabelmeImage(decoded.rgb, data, decoded.orientation, decoded.mode, path)
    _check_size(json_path, record, image)
    return image


def _image_bytes(json_path: Path, record: dict) -> tuple[bytes, Path | None]:
    embedded = record.get("imageData")
    if embedded is not None:  # labelme then never looks at imagePath
        try:
            return base64.b64decode(embedded), None
        except (binascii.Error, TypeError, ValueError):
            raise DataError(f"{json_path}: imageData is not base64 image data") from None
    image_path = record.get("imagePath")
    if not isinstance(image_path, str) or not image_path.strip():
        raise DataError(f"{json_path}: no image (imageData is null and imagePath is empty)")
    # Annotations made on Windows keep backslashes; labelme reads them with PureWindowsPath.
    path = json_path.parent / PureWindowsPath(image_path).as_posix()
    try:
        return path.read_bytes(), path
    except FileNotFoundError:
        raise DataError(
            f"{json_path}: image not found: {path} (imagePath {image_path!r})"
        ) from None
    except OSError as exc:
        raise DataError(f"{json_path}: cannot read the image {path} ({exc.strerror})") from None


def _check_size(json_path: Path, record: dict, image: LabelmeImage) -> None:
    """labelme's app refuses a mismatch too: the annotation was drawn on another image."""
    height, width = record.get("imageHeight"), record.get("imageWidth")
    if height is None or width is None:  # files from old labelme versions may lack them
        return
    actual_h, actual_w = image.rgb.shape[:2]
    if (height, width) != (actual_h, actual_w):
        turned = f" after EXIF orientation {image.orientation}" if image.orientation else ""
        raise DataError(
            f"{json_path}: the image is {actual_w}x{actual_h}{turned} but the JSON says "
            f"imageWidth x imageHeight = {width}x{height}"
        )
