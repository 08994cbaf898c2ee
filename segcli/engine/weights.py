"""Initial weights of a run (`--weights`): a segcli checkpoint, any plain state dict, or
`torchvision:NAME`, loaded through the model's own `load_state_dict` with a report.

Loading through `load_state_dict` lets torchvision's version hooks rename the keys of files
saved before torchvision 0.13 (`fpn.inner_blocks.0.weight` -> `fpn.inner_blocks.0.0.weight`,
`rpn.head.conv.weight`, `mask_head.mask_fcn1.weight`); a pre-hook on every module sees the keys
after those renames and drops the tensors whose shape differs from the model's (the class-specific
predictors when the class count changes), so nothing else is lost silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from segcli.engine.checkpoint import read_torch_file
from segcli.errors import DataError

TORCHVISION_PREFIX = "torchvision:"
SHAPE, MISSING = "shape", "missing"


@dataclass
class WeightsReport:
    """What `load_weights` did: the `weights.json` of a run."""

    source: str
    loaded: list[str]
    skipped: dict[str, str]  # model tensor -> "missing" | "shape"
    unused: list[str]  # the file's tensors the model did not take

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "loaded": self.loaded,
            "skipped": self.skipped,
            "unused": self.unused,
        }

    def module_lines(self) -> list[str]:
        """One line of counts per top-level module of the model."""
        loaded = Counter(name.split(".")[0] for name in self.loaded)
        skipped = Counter(name.split(".")[0] for name in self.skipped)
        lines = []
        for module in dict.fromkeys([*loaded, *skipped]):
            reasons = Counter(
                why for name, why in self.skipped.items() if name.split(".")[0] == module
            )
            detail = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
            total = loaded[module] + skipped[module]
            lines.append(
                f"  {module}: {loaded[module]}/{total} loaded" + (f" ({detail})" if detail else "")
            )
        return lines

    def unexpected_skips(self, class_specific: tuple[str, ...]) -> list[str]:
        """Skipped tensors outside the modules a model declares class-specific."""
        return [
            name
            for name in self.skipped
            if not any(name == m or name.startswith(m + ".") for m in class_specific)
        ]


def read_weights(spec: str) -> dict[str, torch.Tensor]:
    """The tensors named by `spec`: `torchvision:NAME` (through torchvision's weights API,
    downloaded when needed), or a file holding a segcli checkpoint or a plain state dict."""
    if spec.startswith(TORCHVISION_PREFIX):
        from segcli.nn.pretrained import load_pretrained, torchvision_weights

        weights = torchvision_weights(spec.removeprefix(TORCHVISION_PREFIX))
        return plain_state_dict(load_pretrained(weights, spec))
    payload = read_torch_file(spec, "weights file (a state dict or segcli checkpoint)")
    state = plain_state_dict(payload) if isinstance(payload, dict) else {}
    if not state:
        raise DataError(f"{spec}: holds no tensors (not a state dict or segcli checkpoint)")
    return state


def checkpoint_architecture(spec: str | None, recipe) -> dict:
    """The model options of the segcli checkpoint of `recipe` that `spec` names (a first
    training stage), so a second stage builds the same network; empty for anything else,
    whose problems `read_weights` reports."""
    if not spec or spec.startswith(TORCHVISION_PREFIX) or not Path(spec).is_file():
        return {}
    try:
        payload = torch.load(spec, map_location="cpu", weights_only=True)
    except Exception:  # any unreadable file: read_weights says what it is
        return {}
    if not isinstance(payload, dict) or payload.get("recipe") != recipe.name:
        return {}
    options = payload.get("config", {}).get("model", {})
    return {k: v for k, v in options.items() if k in recipe.options}


def plain_state_dict(payload: dict) -> dict[str, torch.Tensor]:
    """The tensors of a segcli checkpoint's `model`, or of a plain state dict, without the
    `module.` prefix DataParallel/DDP adds. Without `_metadata`, torchvision's version hooks
    treat the keys as possibly old and rename the ones that are."""
    state = payload.get("model", payload)
    if not isinstance(state, dict):
        return {}
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> WeightsReport:
    """Load `state` into `model` by name, dropping tensors whose shape differs; a model may map
    foreign key prefixes onto its own in `weights_key_map` (e.g. torchvision's segmentation
    `backbone.` onto `backbone.body.`)."""
    state = _map_keys(state, getattr(model, "weights_key_map", {}), model.state_dict())
    wrong_shape: set[str] = set()
    handles = [
        module.register_load_state_dict_pre_hook(_shape_filter(wrong_shape))
        for module in model.modules()
    ]
    try:
        result = model.load_state_dict(state, strict=False)
    finally:
        for handle in handles:
            handle.remove()
    missing = set(result.missing_keys)
    skipped = {k: SHAPE if k in wrong_shape else MISSING for k in sorted(missing)}
    loaded = [k for k in model.state_dict() if k not in missing]
    if not loaded:
        raise DataError(f"{source}: no tensor matches this model by name and shape")
    return WeightsReport(source, loaded, skipped, sorted({*result.unexpected_keys, *wrong_shape}))


def _shape_filter(wrong_shape: set[str]):
    """A load_state_dict pre-hook removing (and recording) the module's own tensors whose
    shape differs from the file's, so they count as not loaded instead of raising."""

    def hook(module, state_dict, prefix, *args) -> None:
        own = {**module._parameters, **module._buffers}
        for name, tensor in own.items():
            key = prefix + name
            if tensor is not None and key in state_dict and state_dict[key].shape != tensor.shape:
                wrong_shape.add(key)
                del state_dict[key]

    return hook


def _map_keys(state: dict, key_map: dict[str, str], own: dict) -> dict:
    """Rename keys the model does not have whose prefix `key_map` maps onto keys it has."""
    if not key_map:
        return state
    mapped = {}
    for key, value in state.items():
        for old, new in key_map.items():
            candidate = new + key.removeprefix(old)
            if key not in own and key.startswith(old) and candidate in own:
                key = candidate
                break
        mapped[key] = value
    return mapped


def _log_later_stage(cfg, recipe, log) -> None:
    """Say which of the recipe's later-stage settings (`Recipe.from_weights`) the run kept."""
    if cfg.weights.startswith(TORCHVISION_PREFIX):
        return
    values = {**cfg.to_dict(), **cfg.model}
    kept = [f"{k}={v}" for k, v in recipe.from_weights.items() if values.get(k) == v]
    if kept:
        log.info(f"{', '.join(kept)}: {recipe.name}'s settings for a later training stage")


def start_from_weights(model: nn.Module, cfg, recipe, log) -> WeightsReport | None:
    """Load `cfg.weights` into a new run's model and say what happened (nothing on resume,
    where the checkpoint replaces every weight)."""
    for key, value in recipe.pretrained_options.items():
        if (cfg.weights or cfg.pretrained) and cfg.model.get(key) == value:
            log.info(f"{key}={value}: {recipe.name}'s setting for runs from pretrained weights")
    if not cfg.weights or cfg.resume:
        return None
    _log_later_stage(cfg, recipe, log)
    report = load_weights(model, read_weights(cfg.weights), cfg.weights)
    log.info(
        f"--weights {cfg.weights}: {len(report.loaded)} tensors loaded, {len(report.skipped)} "
        f"kept as initialised, {len(report.unused)} of the file's unused (weights.json)"
    )
    for line in report.module_lines():
        log.info(line)
    odd = report.unexpected_skips(getattr(model, "class_specific_modules", ()))
    if odd:
        shown = ", ".join(odd[:6]) + (" ..." if len(odd) > 6 else "")
        log.warn(
            f"{len(odd)} tensors outside the class-specific layers were not loaded and start "
            f"as initialised: {shown}"
        )
    return report
