"""Published weights through torchvision's weights API: from the torch cache, or downloaded
into it (with a progress bar) when the machine is online and `SEGCLI_OFFLINE` is not set."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from segcli.errors import ConfigError

OFFLINE_ENV = "SEGCLI_OFFLINE"


def cached_weights_path(weights) -> Path:
    """Where torchvision keeps `weights` (a torchvision WeightsEnum member) once downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def weights_id(weights) -> str:
    """`Enum.MEMBER`, the name torchvision.models.get_weight takes."""
    return f"{type(weights).__name__}.{weights.name}"


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def load_pretrained(weights, what: str) -> dict[str, torch.Tensor]:
    """The state dict of `weights` (`what` names them in messages): the cached file, else a
    download into the torch cache; offline or unreachable, one line saying where the file goes."""
    path = cached_weights_path(weights)
    if path.is_file():
        return weights.get_state_dict(progress=False, check_hash=False)
    if offline():
        raise ConfigError(_not_cached(path, weights, what, f"{OFFLINE_ENV} is set"))
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except OSError as exc:  # no network (URLError), a cache folder that cannot be written
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise ConfigError(_not_cached(path, weights, what, f"download failed: {reason}")) from None


def _not_cached(path: Path, weights, what: str, why: str) -> str:
    return (
        f"{path}: {what} weights are not in the local torch cache ({why}); on a machine with "
        f'internet run `python -c "from torchvision.models import get_weight; '
        f"get_weight('{weights_id(weights)}').get_state_dict()\"` and copy {path.name} there"
    )


def torchvision_weights(name: str):
    """The torchvision weights called `name`: a model name (`maskrcnn_resnet50_fpn`, its
    DEFAULT weights) or an `Enum.MEMBER` (`MaskRCNN_ResNet50_FPN_Weights.COCO_V1`)."""
    from torchvision import models

    from segcli.errors import did_you_mean

    try:
        if "." in name:
            return models.get_weight(name)
        return models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        hint = did_you_mean(name, models.list_models())
        raise ConfigError(
            f"--weights torchvision:{name}: torchvision has no such weights{hint}"
        ) from None
