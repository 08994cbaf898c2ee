"""The modified aligned Xception-65 of DeepLab v3+ (arXiv:1802.02611, section 3.2) from timm:
depthwise separable convolutions in place of max-pooling, batch norm and ReLU after every
3x3 depthwise convolution, 16 middle-flow blocks, atrous exit flow for output stride 16 or 8.

ImageNet weights are the DeepLab authors' TensorFlow checkpoint as timm ports it
(`xception65.tf_in1k` on the Hugging Face hub), read from the hub's local cache or downloaded
into it.
"""

from __future__ import annotations

import torch
from torch import nn

from segcli.errors import ConfigError
from segcli.nn.pretrained import OFFLINE_ENV, offline

TIMM_NAME = "xception65"
TIMM_TAG = "tf_in1k"  # the DeepLab authors' ImageNet checkpoint
WEIGHTS = f"timm/{TIMM_NAME}.{TIMM_TAG}"  # Hugging Face hub repository
WEIGHTS_FILE = "model.safetensors"
# timm's feature taps: blocks.1 before its strided convolution (stride 4, 256 channels, the
# decoder's low-level features, as DeepLab's entry_flow/block2 endpoint) and the exit flow.
LOW, OUT = 1, 4


class AlignedXception(nn.Module):
    """model(images [B,3,H,W]) -> {"low": [B,256,H/4,W/4], "out": [B,2048,H/os,W/os]}."""

    out_channels = 2048
    low_channels = 256
    # the stem, the entry flow, the middle flow, the exit flow (for --freeze)
    stages = (
        ("body.stem_0", "body.stem_1"),
        tuple(f"body.blocks_{i}" for i in range(3)),
        tuple(f"body.blocks_{i}" for i in range(3, 19)),
        ("body.blocks_19", "body.blocks_20"),
    )

    def __init__(self, output_stride: int = 16, pretrained: bool = False, width: float = 1.0):
        super().__init__()
        import timm

        if output_stride not in (8, 16):
            raise ConfigError(f"setting 'output_stride': expected 8 or 16, got {output_stride!r}")
        if width != 1.0:
            raise ConfigError(f"setting 'width': {TIMM_NAME} comes at full width only (1.0)")
        overlay = {"file": cached_weights()} if pretrained else None
        self.body = timm.create_model(
            f"{TIMM_NAME}.{TIMM_TAG}",
            pretrained=pretrained,
            pretrained_cfg_overlay=overlay,
            features_only=True,
            output_stride=output_stride,
            out_indices=(LOW, OUT),
        )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        low, out = self.body(images)
        return {"low": low, "out": out}


def cached_weights() -> str:
    """The path of the ImageNet weights in the Hugging Face cache, downloaded there when the
    machine is online and SEGCLI_OFFLINE is not set; else one line saying how to get them."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    path = try_to_load_from_cache(WEIGHTS, WEIGHTS_FILE)
    if isinstance(path, str):
        return path
    if offline():
        raise ConfigError(_not_cached(f"{OFFLINE_ENV} is set"))
    try:
        return hf_hub_download(WEIGHTS, WEIGHTS_FILE)
    except Exception as exc:  # no network, hub errors, an unwritable cache: all say the same
        raise ConfigError(_not_cached(f"download failed: {type(exc).__name__}")) from None


def _not_cached(why: str) -> str:
    return (
        f"{WEIGHTS}/{WEIGHTS_FILE}: ImageNet Xception-65 weights are not in the local Hugging "
        f'Face cache ({why}); on a machine with internet run `python -c "import timm; '
        f"timm.create_model('{TIMM_NAME}.{TIMM_TAG}', pretrained=True)\"` and copy its "
        "~/.cache/huggingface/hub folder there (or set HF_HOME)"
    )
