"""DeepLab's training loss at the scores' own resolution (v1 arXiv:1412.7062 section 3.1, v2
arXiv:1606.00915 section 4): cross-entropy against the ground truth subsampled to the stride
of the scores instead of upsampled scores against the full-resolution ground truth."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def subsample_target(target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Every s-th label of `target` [B,H,W] from the first, s the stride that gives `size`
    (h, w) = (ceil(H/s), ceil(W/s)), the size of scores at stride s through 3x3/2 pad-1
    pooling. The authors' Caffe `Interp` with shrink factor 8 samples the same pixels."""
    h, w = target.shape[-2:]
    stride = -(-h // size[0])  # ceil
    sampled = target[:, ::stride, ::stride]
    if tuple(sampled.shape[-2:]) != tuple(size):
        raise ValueError(
            f"scores of {tuple(size)} do not subsample a {h}x{w} target by a whole stride"
        )
    return sampled


def subsampled_cross_entropy(
    outputs: torch.Tensor, target: torch.Tensor, ignore_index: int
) -> dict[str, torch.Tensor]:
    """outputs [B,K,h,w] at the model's stride (or at the input size, then plain
    cross-entropy), target [B,H,W]: cross-entropy averaged over the labelled sampled pixels."""
    if outputs.shape[-2:] != target.shape[-2:]:
        target = subsample_target(target, outputs.shape[-2:])
    return {"loss_ce": F.cross_entropy(outputs.float(), target, ignore_index=ignore_index)}
