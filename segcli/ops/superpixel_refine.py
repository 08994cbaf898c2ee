"""Superpixel refinement of semantic predictions: each SLIC superpixel takes the class most of
its pixels were predicted as (segcli.ops.superpixels), a cheap alternative to the dense CRF.
Composes with the other prediction functions of segcli.ops.tta."""

from __future__ import annotations

import numpy as np
import torch

from segcli.data.transforms import denormalize
from segcli.errors import ConfigError
from segcli.ops.superpixels import COMPACTNESS, slic, vote_counts
from segcli.ops.tta import plain_logits


def superpixel_predictor(n_segments: int, compactness: float = COMPACTNESS, predict=plain_logits):
    """Wrap `predict(model, images) -> logits [B,K,H,W]` so that it returns, per pixel, the log
    share of its superpixel's pixels predicted as each class: the argmax is the superpixel's
    majority class (ties: the lower class id). The RGB image that SLIC needs is recovered from
    the normalised batch, as the CRF does."""
    if n_segments < 1 or not compactness > 0:
        raise ConfigError(
            f"--superpixels: expected at least 1 segment and a positive compactness, got "
            f"{n_segments} and {compactness}"
        )

    def predict_superpixels(model, images: torch.Tensor) -> torch.Tensor:
        logits = predict(model, images)
        labels = logits.argmax(1).cpu().numpy()
        rgb = denormalize(images)
        shares = [
            vote_shares(labels[i], slic(rgb[i], n_segments, compactness), logits.shape[1])
            for i in range(len(labels))
        ]
        return torch.from_numpy(np.log(np.clip(np.stack(shares), 1e-8, None))).to(logits.device)

    return predict_superpixels


def vote_shares(labels: np.ndarray, superpixels: np.ndarray, num_classes: int) -> np.ndarray:
    """Share of each class among the pixels of each pixel's superpixel [K, H, W] (float32)."""
    counts = vote_counts(labels, superpixels, num_classes).astype(np.float32)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    return np.moveaxis(shares[superpixels], -1, 0)
