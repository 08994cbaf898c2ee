"""`--freeze`: keep the first backbone stages, or the whole backbone body, fixed while the rest
trains (Detectron2's FREEZE_AT; matterport Mask R-CNN's `layers='heads'`).

Frozen parameters get requires_grad False, hence no gradient and no optimizer state; batch
norm layers whose parameters are all frozen also keep their running statistics (eval mode).
"""

from __future__ import annotations

from torch import nn

from segcli.errors import ConfigError

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def freeze_backbone(model: nn.Module, spec: str) -> list[str]:
    """Freeze what `spec` says (`none`, `heads`: every backbone stage, or a number of stages)
    and return the frozen modules' names."""
    if spec == "none":
        return []
    stages = getattr(model, "backbone_stages", ())
    if not stages:
        raise ConfigError(f"--freeze {spec}: this model declares no backbone stages to freeze")
    count = len(stages) if spec == "heads" else int(spec)
    if count > len(stages):
        raise ConfigError(f"--freeze {spec}: the backbone has only {len(stages)} stages")
    names = [name for stage in stages[:count] for name in stage]
    for name in names:
        model.get_submodule(name).requires_grad_(False)
    return names


def train_mode(model: nn.Module) -> None:
    """`model.train()`, but batch norm whose parameters are all frozen stays in eval mode."""
    model.train()
    for module in model.modules():
        if isinstance(module, BATCH_NORMS):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()
