"""Picking the device and the mixed-precision mode."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from segcli.errors import ConfigError


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto` takes cuda (this rank's GPU under torchrun), then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device '{name}': expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device '{name}': expected auto, cpu, cuda, cuda:N or mps")
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ConfigError(f"--device {name}: Apple's MPS is not available on this machine")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        elif device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) here")
    return device


@dataclass(frozen=True)
class Precision:
    """Autocast settings: bf16 where the GPU has it, else fp16 with a GradScaler."""

    enabled: bool
    dtype: torch.dtype = torch.float32
    device_type: str = "cpu"

    @property
    def needs_scaler(self) -> bool:
        return self.enabled and self.dtype == torch.float16

    def autocast(self):
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def select_precision(device: torch.device, amp: bool) -> Precision:
    if not amp or device.type != "cuda":
        return Precision(enabled=False, device_type=device.type)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Precision(enabled=True, dtype=dtype, device_type="cuda")
