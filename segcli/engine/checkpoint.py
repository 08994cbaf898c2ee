"""Checkpoints: atomic writes, exact-resume state (RNG included), and partial weight loading."""

from __future__ import annotations

import pickle
import random
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segcli import io
from segcli.errors import DataError, first_line
from segcli.torch_files import check_torch_file, describe_file

FORMAT_VERSION = 1


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and/or torch.compile wrappers."""
    model = getattr(model, "_orig_mod", model)
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states, in types torch.load accepts."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            **np_state,
            "state": {
                **np_state["state"],
                "key": torch.from_numpy(np_state["state"]["key"].copy()),
            },
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        {**np_state, "state": {**np_state["state"], "key": np_state["state"]["key"].numpy()}}
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """Write `payload` atomically (temp file + fsync + os.replace)."""
    io.save_torch(path, {"format": FORMAT_VERSION, **payload})


def load(path: str | Path) -> dict[str, Any]:
    """Read a segcli checkpoint onto the CPU; a missing or foreign file is a DataError."""
    payload = read_torch_file(path, "checkpoint")
    if not isinstance(payload, dict) or "model" not in payload:
        raise DataError(f"{path}: not a segcli checkpoint (no model weights inside)")
    return payload


def read_torch_file(path: str | Path, what: str) -> Any:
    """torch.load onto the CPU (tensors and plain containers only); a file that is missing or
    not a PyTorch file is one DataError line saying what the file is."""
    path = check_torch_file(path, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError):
        raise DataError(f"{path}: not a {what}: {describe_file(path)}") from None


def restore_model(
    path: str | Path, device, sets: Iterable[str] = ()
) -> tuple[nn.Module, Any, Any, tuple[str, ...], dict]:
    """(model in eval mode on `device`, recipe, config, class names, payload) from a checkpoint.

    `sets`: `key=value` model options to change, e.g. `output_stride=8` (DeepLab v3 section 4.3
    evaluates at a finer output stride than it trains at); the config returned has them.
    """
    import dataclasses

    from segcli.config import config_from_dict, parse_model_sets
    from segcli.recipe import get_recipe

    payload = load(path)
    for key in ("recipe", "config", "class_names"):
        if key not in payload:
            raise DataError(f"{path}: not a segcli checkpoint (no '{key}' inside)")
    recipe = get_recipe(payload["recipe"])
    cfg = config_from_dict(payload["config"])
    cfg = dataclasses.replace(cfg, model={**cfg.model, **parse_model_sets(sets, recipe)})
    names = tuple(payload["class_names"])
    # a run from pretrained weights saved before its recipe declared pretrained_options
    warm = recipe.pretrained_options if cfg.pretrained or cfg.weights else {}
    model = recipe.build_model(
        len(names), pretrained=False, **{**recipe.options, **warm, **cfg.model}
    )
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise DataError(
            f"{path}: weights do not fit {recipe.name} ({first_line(exc, 100)})"
        ) from None
    return model.to(device).eval(), recipe, cfg, names, payload
