"""Box and mask helpers for single-shot detectors: SSD-style anchors and box coding, cropping
masks to boxes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision.models.detection._utils import BoxCoder  # private, no public equivalent: setup.cfg

# SSD's variances (0.1 for the centre, 0.2 for the size) as torchvision BoxCoder weights:
# t_x = (g_x - a_x) / (0.1 a_w), t_w = log(g_w / a_w) / 0.2 (Liu et al., arXiv:1512.02325, eq. 2).
SSD_BOX_CODER = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))


def grid_anchors(
    grid_sizes: Sequence[tuple[int, int]],
    scales: Sequence[float],
    aspect_ratios: Sequence[float],
    device: torch.device | None = None,
) -> torch.Tensor:
    """[A, 4] xyxy anchors in image-relative coordinates ([0, 1] spans the image).

    One scale per pyramid level (grid_sizes[l] = (H_l, W_l), scales[l] relative to the image
    side); at every cell centre, one anchor per aspect ratio r with w = s sqrt(r), h = s / sqrt(r).
    Ordered level, row, column, ratio: the order of a head's [B, a*n, H, W] output reshaped to
    [B, H*W*a, n].
    """
    boxes = []
    ratios = torch.tensor([math.sqrt(r) for r in aspect_ratios], device=device)
    for (h, w), scale in zip(grid_sizes, scales, strict=True):
        cy = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        cx = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")
        centre = torch.stack([cx, cy], -1).reshape(-1, 1, 2).expand(-1, len(ratios), 2)
        half = torch.stack([scale * ratios, scale / ratios], -1) / 2  # [a, 2]
        boxes.append(torch.cat([centre - half, centre + half], -1).reshape(-1, 4))
    return torch.cat(boxes)


def crop_masks(masks: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """masks [N, H, W] with everything outside boxes[N, 4] (xyxy, in pixels of the mask grid)
    set to 0; a pixel is inside when its centre is."""
    h, w = masks.shape[-2:]
    cols = torch.arange(w, device=masks.device, dtype=boxes.dtype) + 0.5
    rows = torch.arange(h, device=masks.device, dtype=boxes.dtype) + 0.5
    inside_x = (cols >= boxes[:, 0:1]) & (cols < boxes[:, 2:3])  # [N, W]
    inside_y = (rows >= boxes[:, 1:2]) & (rows < boxes[:, 3:4])  # [N, H]
    inside = inside_y[:, :, None] & inside_x[:, None, :]
    return masks * inside.to(masks.dtype)
