"""Weight initialisers named by the papers."""

from __future__ import annotations

import torch
from torch import nn


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """[C, C, k, k] weights that make a transposed convolution upsample each channel bilinearly
    (FCN section 3.3: deconvolution filters initialised to bilinear interpolation)."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    grid = torch.arange(kernel_size, dtype=torch.float32)
    profile = 1 - (grid - center).abs() / factor
    kernel = profile[:, None] * profile[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = kernel
    return weight


def bilinear_upsampler(channels: int, factor: int, trainable: bool) -> nn.ConvTranspose2d:
    """A transposed convolution (kernel 2f, stride f, padding f/2) that outputs exactly f x the
    input size, initialised to bilinear upsampling, learnable or fixed."""
    layer = nn.ConvTranspose2d(
        channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False
    )
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(channels, 2 * factor))
    layer.weight.requires_grad_(trainable)
    return layer


def he_normal_(module: nn.Module) -> None:
    """Gaussian weights with std sqrt(2 / fan_in) for every conv (U-Net section 3), zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad [B, C, H, W] at the bottom and right to multiples of `multiple`."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    return nn.functional.pad(x, (0, pw, 0, ph))
