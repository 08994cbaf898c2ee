"""Test-time prediction functions for semantic models: multi-scale + flip averaging (TTA), then
dense-CRF or superpixel refinement, composed into one `predict(model, images) -> logits` for
eval and infer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F

from segcli.errors import ConfigError

# DeepLab v3 section 4.3 (Inference strategy on val set) and v3+ section 4.3: inputs rescaled
# by 0.5 .. 1.75 and left-right flipped, the outputs averaged.
V3_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


@torch.no_grad()
def plain_logits(model, images: torch.Tensor) -> torch.Tensor:
    """The model's class scores [B, K, H, W] at the input size, float32: the prediction
    function the others wrap."""
    return model(images).float()


def tta_predictor(scales: Sequence[float] = V3_SCALES, flip: bool = True, predict=plain_logits):
    """Wrap `predict` so it averages the logits [B,K,H,W] of the images rescaled (bilinear) by
    each of `scales` and, with `flip`, mirrored, each resized back to H x W."""
    if not scales or any(s <= 0 for s in scales):
        raise ConfigError(f"--tta-scale: expected positive scales, got {list(scales)}")

    def predict_tta(model, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        total, count = None, 0
        for scale in scales:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            scaled = _resize(images, size)
            for flipped in (False, True) if flip else (False,):
                logits = predict(model, scaled.flip(-1) if flipped else scaled)
                logits = _resize(logits.flip(-1) if flipped else logits, (h, w))
                total = logits if total is None else total + logits
                count += 1
        return total / count

    return predict_tta


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size, mode="bilinear", align_corners=False)


def build_predictor(
    tta_scales: Sequence[float] | None = None,
    tta_flip: bool = True,
    crf: bool = False,
    crf_items: Iterable[str] = (),
    superpixels: int | None = None,
):
    """The prediction function eval/infer use: plain logits, TTA (when `tta_scales` is given),
    then one refinement: the dense CRF (`crf`, with `key=value` parameter overrides) or the
    majority vote in about `superpixels` SLIC superpixels. None when plain."""
    crf_items = list(crf_items)
    if crf_items and not crf:
        raise ConfigError("--crf-param needs --crf")
    if crf and superpixels is not None:
        raise ConfigError("--crf and --superpixels are alternative refinements: give one")
    predict = tta_predictor(tta_scales, tta_flip) if tta_scales else plain_logits
    if superpixels is not None:
        from segcli.ops.superpixel_refine import superpixel_predictor

        predict = superpixel_predictor(superpixels, predict=predict)
    if crf:
        from segcli.ops.crf import crf_params, crf_predictor

        predict = crf_predictor(crf_params(crf_items), predict)
    return None if predict is plain_logits else predict
