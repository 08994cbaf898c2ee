"""Fully connected CRF post-processing of DeepLab v1 (section 4.2) and v2 (section 3.3):
Krähenbühl & Koltun's mean-field inference with Gaussian edge potentials, through the optional
`pydensecrf2` package (`pip install 'segcli[crf]'`).

Energy: unary -log P(x_i) from the network's softmax, plus the pairwise potential
  w1 exp(-|p_i - p_j|^2 / 2 theta_alpha^2 - |I_i - I_j|^2 / 2 theta_beta^2)   (appearance)
+ w2 exp(-|p_i - p_j|^2 / 2 theta_gamma^2)                                   (smoothness)
with the Potts compatibility.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

from segcli.config import split_setting
from segcli.data.transforms import denormalize
from segcli.errors import ConfigError, did_you_mean

# DeepLab v1 section 5 (Evaluation on Validation set): w2 = 3 and theta_gamma = 3 ("default
# values") and 10 mean-field iterations; w1, theta_alpha, theta_beta were cross-validated on
# 100 val images; these are the values the authors released for DeepLab-LargeFOV. The
# released DeepLab v2 ResNet-101 values differ slightly (w1 4, theta_alpha 67, theta_beta 3,
# theta_gamma 1); override with --crf-param.
PAPER_PARAMS: dict[str, float] = {
    "w1": 4.0,
    "theta_alpha": 121.0,
    "theta_beta": 5.0,
    "w2": 3.0,
    "theta_gamma": 3.0,
    "iterations": 10,
}
INSTALL_HINT = "pip install 'segcli[crf]' (or: pip install pydensecrf2)"


def crf_params(items: Iterable[str] = ()) -> dict[str, float]:
    """PAPER_PARAMS overridden by `key=value` strings (e.g. from --crf-param)."""
    params = dict(PAPER_PARAMS)
    for item in items:
        key, raw = split_setting(item)
        if raw is None or key not in params:
            hint = did_you_mean(key, params, n=2, list_known=True)
            raise ConfigError(f"--crf-param '{item}': expected key=value" + hint)
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"--crf-param '{item}': {raw!r} is not a number") from None
        if value < 0 or (key == "iterations" and not value.is_integer()):
            raise ConfigError(f"--crf-param '{item}': expected a non-negative number")
        params[key] = int(value) if key == "iterations" else value
    return params


def _densecrf():
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError:
        raise ConfigError(f"--crf needs the optional dense CRF package: {INSTALL_HINT}") from None
    return dcrf


def dense_crf(image: np.ndarray, probs: np.ndarray, params: Mapping[str, float]) -> np.ndarray:
    """Mean-field marginals [K,H,W] (float32) for `probs` [K,H,W] (softmax) on `image`
    [H,W,3] (uint8 RGB)."""
    dcrf = _densecrf()
    k, h, w = probs.shape
    crf = dcrf.DenseCRF2D(w, h, k)
    unary = -np.log(np.clip(probs, 1e-8, 1.0)).reshape(k, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=params["theta_gamma"], compat=params["w2"])
    crf.addPairwiseBilateral(
        sxy=params["theta_alpha"],
        srgb=params["theta_beta"],
        rgbim=np.ascontiguousarray(image, dtype=np.uint8),
        compat=params["w1"],
    )
    marginals = crf.inference(int(params["iterations"]))
    return np.asarray(marginals, dtype=np.float32).reshape(k, h, w)


def crf_predictor(params: Mapping[str, float], predict):
    """Wrap `predict(model, images) -> logits [B,K,H,W]` so it returns the log CRF marginals.

    The CRF needs the RGB image: it is recovered exactly from the normalised batch (the eval
    pipeline only normalises), so the evaluation loop and infer need no second input.
    """
    _densecrf()  # fail before any work when the extra is missing

    def predict_crf(model, images: torch.Tensor) -> torch.Tensor:
        logits = predict(model, images)
        probs = logits.float().softmax(1).cpu().numpy()
        rgb = denormalize(images)
        refined = np.stack([dense_crf(rgb[i], probs[i], params) for i in range(len(probs))])
        return torch.from_numpy(np.log(np.clip(refined, 1e-8, None))).to(logits.device)

    return predict_crf
