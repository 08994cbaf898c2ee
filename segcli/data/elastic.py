"""U-Net's elastic deformation (Ronneberger et al., arXiv:1505.04597, section 3.1) as an
albumentations transform, so images and masks are warped by the same field."""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from albumentations.core.type_definitions import Targets


def coarse_to_dense(coarse: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic interpolation of a field given on a coarse grid [g_y, g_x, 2] whose nodes sit
    on the image's corners and spread evenly between them (node i of n at pixel
    i * (size - 1) / (n - 1)), to every pixel: [height, width, 2] float32.

    torch's align-corners bicubic (Keys' kernel, a = -0.75, as OpenCV's) in float: cv2.resize
    would put the nodes at cell centres, and cv2.warpAffine quantises its sampling positions to
    1/32 of a grid cell, which makes the field a staircase on large images.
    """
    grid = torch.from_numpy(np.ascontiguousarray(coarse, np.float32)).permute(2, 0, 1)[None]
    dense = F.interpolate(grid, (height, width), mode="bicubic", align_corners=True)
    return dense[0].permute(1, 2, 0).numpy()


class CoarseGridElastic(A.DualTransform):
    """Section 3.1: "random displacement vectors on a coarse 3 by 3 grid", drawn from a Gaussian
    with 10 px standard deviation, per-pixel displacements "by bicubic interpolation".

    The image is resampled bilinearly, masks by nearest neighbour, both reflected at the border
    (the paper does not say; reflection invents no constant-colour margins).
    """

    _targets = (Targets.IMAGE, Targets.MASK)

    def __init__(self, grid: int = 3, sigma: float = 10.0, p: float = 1.0):
        super().__init__(p=p)
        self.grid = grid
        self.sigma = sigma

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        height, width = params["shape"][:2]
        coarse = self.random_generator.normal(0.0, self.sigma, (self.grid, self.grid, 2))
        field = coarse_to_dense(coarse, height, width)  # [H,W,2]: dx, dy
        xs, ys = np.meshgrid(
            np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
        )
        return {"map_x": xs + field[..., 0], "map_y": ys + field[..., 1]}

    def apply(self, img: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, **_) -> np.ndarray:
        return _remap(img, map_x, map_y, cv2.INTER_LINEAR)

    def apply_to_mask(
        self, mask: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, **_
    ) -> np.ndarray:
        return _remap(mask, map_x, map_y, cv2.INTER_NEAREST)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("grid", "sigma")


def _remap(array: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, interpolation: int):
    """Output pixel (y, x) takes the input at (map_y, map_x); keeps a trailing channel axis of
    size 1, which cv2.remap drops."""
    warped = cv2.remap(array, map_x, map_y, interpolation, borderMode=cv2.BORDER_REFLECT_101)
    return warped.reshape(array.shape)
