"""ImageNet weights from torchvision's weights API, from the local torch cache only."""

from __future__ import annotations

from pathlib import Path

import torch

from segcli.errors import ConfigError


def cached_weights_path(weights) -> Path:
    """Where torchvision keeps `weights` (a torchvision WeightsEnum member) once downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def load_pretrained(weights, builder: str) -> dict[str, torch.Tensor]:
    """The state dict of `weights`, or one clear line saying where to put the file."""
    path = cached_weights_path(weights)
    if not path.is_file():
        raise ConfigError(
            f"{path}: ImageNet weights for {builder} are not in the local torch cache (no "
            f'download at run time); on a machine with internet run `python -c "import '
            f"torchvision; torchvision.models.{builder}(weights='{weights.name}')\"` and copy "
            f"{path.name} there, or train without --pretrained"
        )
    return weights.get_state_dict(progress=False, check_hash=False)
