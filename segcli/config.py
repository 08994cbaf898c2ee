"""Training configuration: one frozen dataclass, resolved in one place.

Each field of TrainConfig is the one declaration of its setting (segcli.settings): its type
and default, its Rule and, for the settings `segcli train` takes as flags, the flag's help
(segcli.cli_flags makes the options from it).

Precedence, lowest first: TrainConfig defaults < the recipe's paper defaults < its later-stage
settings (runs from an earlier stage's --weights) < the recipe's quick profile (built-in shapes
data only, unless resolve_config is told quick=False) < command-line flags < `--set key=value`.
"""

from __future__ import annotations

import ast
import dataclasses
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segcli.data import IGNORE_INDEX
from segcli.errors import ConfigError, DataError, did_you_mean
from segcli.recipe import Recipe
from segcli.settings import Rule, coerce, flag, flag_name, setting

BUILTIN_DATA = "shapes"


OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("poly", "step", "constant")
AUGMENTS = ("flip", "ssd")  # instance training pipelines: data.instance.instance_train_samples


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved with the run and inside every checkpoint."""

    recipe: str
    data: str = flag(BUILTIN_DATA, "Dataset folder; default: built-in shapes.")
    num_classes: int | None = setting(None, low=1)  # None: from the dataset
    epochs: int = flag(1, "Epochs (ignored when --iters is given).", low=1)
    iters: int | None = flag(None, "Optimizer steps; overrides --epochs.", low=1)
    batch_size: int = flag(8, "Images per step and process.", low=1)
    img_size: int = flag(
        512, "Training crop (semantic); the network's input size (instance).", low=32
    )
    optimizer: str = setting("sgd", choices=OPTIMIZERS)
    lr: float = flag(0.01, "Base learning rate.", above=0)
    # > 0: `lr` is for this many images per step and is scaled linearly to the actual batch
    # (batch size x accumulate x processes), Goyal et al. arXiv:1706.02677; 0: used as given
    lr_batch_size: int = setting(0, low=0)
    momentum: float = setting(0.9, low=0, high=1)
    weight_decay: float = setting(1e-4, low=0)
    bias_lr_mult: float = setting(1.0, low=0)
    head_lr_mult: float = setting(1.0, low=0)  # the modules a model lists in `head_modules`
    schedule: str = setting("poly", choices=SCHEDULES)
    poly_power: float = setting(0.9, above=0)
    lr_steps: tuple[int, ...] = setting((), low=1)
    lr_gamma: float = setting(0.1, above=0)
    warmup_iters: int = setting(0, low=0)
    warmup_factor: float = setting(0.001, above=0, high=1)
    scale_range: tuple[float, float] = setting((0.5, 2.0), above=0)
    hflip: bool = True
    elastic: bool = False  # U-Net section 3.1: elastic deformation on a 3x3 grid
    augment: str = setting("flip", choices=AUGMENTS)  # instance recipes
    accumulate: int = setting(1, low=1)  # micro-batches per optimizer step
    grad_clip: float = setting(0.0, low=0)  # max gradient norm; 0 disables
    device: str = flag("auto", "auto, cpu, cuda, cuda:N or mps.")
    # CUDA only: bf16 where supported, else fp16 with a GradScaler
    amp: bool = flag(True, "Mixed precision (CUDA).")
    channels_last: bool = False
    compile: bool = False
    workers: int = flag(2, "DataLoader worker processes.", low=0)
    out: str | None = flag(None, "Run folder; default runs/<recipe>/<n>.")
    save_every: int = flag(500, "Write last.pt every N iterations.", low=0)
    # iterations; 0: at the end of every epoch and of training
    val_every: int = flag(0, "Validate every N iterations (0: per epoch).", low=0)
    log_every: int = setting(10, low=1)
    resume: str | None = flag(None, "auto (the --out run) or a last.pt path.")
    weights: str | None = flag(
        None,
        "Initial weights: a segcli checkpoint, a state dict file, or torchvision:NAME "
        "(e.g. torchvision:maskrcnn_resnet50_fpn); tensors of another shape are skipped.",
    )
    pretrained: bool = flag(
        False, "ImageNet backbone (downloaded into the torch cache unless SEGCLI_OFFLINE=1)."
    )
    freeze: str = flag(  # engine/freeze.py; checked by check_freeze
        "none",
        "none, heads (train only what follows the backbone body) or N (the first N "
        "backbone stages, 1 = the stem).",
    )
    seed: int = flag(0, "Random seed.", low=0)
    ignore_index: int = setting(IGNORE_INDEX, low=0, high=65535)
    binary: bool = False  # masks of 0/255 mean background/foreground
    via_attribute: str | None = None  # VIA data: the region attribute holding the class
    skip_nonfinite: bool = False
    tensorboard: bool = True  # event files in the run folder (the tensorboard extra)
    sync_bn: bool = False
    shapes_train: int = setting(2000, low=1)  # built-in data: images per split
    shapes_val: int = setting(100, low=1)
    model: Mapping[str, Any] = field(default_factory=dict)  # the recipe's build_model options

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model"] = dict(self.model)
        return out


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig) if f.name not in ("recipe", "model")}
HINTS = typing.get_type_hints(TrainConfig)
FLAGS = {name: f.metadata["flag_help"] for name, f in FIELDS.items() if "flag_help" in f.metadata}


def resolve_config(
    recipe: Recipe,
    flags: Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
    *,
    quick: bool = True,
    base: TrainConfig | None = None,
    inherited: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Merge the layers for `recipe`; `flags` holds command-line values (None = not given).

    `quick`: apply the recipe's quick profile when the data is the built-in one; False gives
    the paper's settings whatever the data. `base`: a saved run's config, which replaces the
    defaults, the recipe's layers and the quick profile (a resumed run). `inherited`: the model
    options of the checkpoint `--weights` starts from (its architecture), above the recipe's
    layers and below the flags.
    """
    layers = config_layers(recipe, flags, sets, quick=quick, base=base, inherited=inherited)
    return merge_layers(recipe, layers)


def config_layers(
    recipe: Recipe,
    flags: Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
    *,
    quick: bool = True,
    base: TrainConfig | None = None,
    inherited: Mapping[str, Any] | None = None,
    from_file: Mapping[str, Any] | None = None,
) -> list[tuple[str, Mapping[str, Any]]]:
    """The named layers resolve_config merges, lowest first (see there); `from_file`: a saved
    config (`--config`), just below the flags."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    overrides = parse_sets(sets, recipe)
    if base is None:
        data = overrides.get("data", flags.get("data", BUILTIN_DATA))
        warm = any(layer.get(k) for layer in (flags, overrides) for k in ("weights", "pretrained"))
        layers = [
            ("recipe", recipe.defaults),
            ("recipe, later stage", recipe.from_weights if _staged(flags, overrides) else {}),
            ("quick profile", recipe.quick if quick and data == BUILTIN_DATA else {}),
            ("pretrained start", recipe.pretrained_options if warm else {}),
            ("--weights checkpoint", inherited or {}),
            ("--config file", from_file or {}),
        ]
    else:
        saved = base.to_dict()
        model = saved.pop("model")
        layers = [
            ("resumed run", {k: v for k, v in saved.items() if k in FIELDS}),
            ("resumed run", model),
        ]
    layers += [("flag", flags), ("--set", overrides)]
    return [(name, with_resize_options(layer, recipe)) for name, layer in layers]


def _staged(flags: Mapping[str, Any], overrides: Mapping[str, Any]) -> bool:
    """Whether the run starts from an earlier stage's weights: `--weights` naming a file, not
    torchvision's published weights (which are `--pretrained`'s kind of start)."""
    weights = overrides.get("weights", flags.get("weights"))
    return bool(weights) and not str(weights).startswith("torchvision:")


def read_config_file(path: str | Path, recipe: Recipe) -> dict[str, Any]:
    """A saved config.yaml as a layer: its settings and model options, without the run's own
    `out` and `resume` (a new run starts from it)."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise DataError(f"{path}: cannot read the config ({exc.strerror or exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a valid config file ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a mapping of settings")
    if doc.get("recipe", recipe.name) != recipe.name:
        raise ConfigError(f"{path}: is a {doc['recipe']} config, not {recipe.name}")
    model = doc.pop("model", None) or {}
    return {k: v for k, v in doc.items() if k not in ("recipe", "out", "resume")} | model


def merge_layers(recipe: Recipe, layers: Sequence[tuple[str, Mapping[str, Any]]]) -> TrainConfig:
    values: dict[str, Any] = {}
    options = dict(recipe.options)
    for _, layer in layers:
        for key, value in layer.items():
            if key in recipe.options:
                options[key] = coerce(key, value, type(recipe.options[key]), recipe.options[key])
            elif key in FIELDS:
                values[key] = coerce(key, value, HINTS[key], FIELDS[key].default)
            else:
                raise ConfigError(_unknown_key(key, recipe))
    check_freeze(values.get("freeze", "none"))
    _check_rules(values, dict(layers).get("flag", {}))
    if _last_layer_setting(layers, "epochs") > _last_layer_setting(layers, "iters"):
        values["iters"] = None  # --epochs given above the layer that counted iterations
    return TrainConfig(recipe=recipe.name, model=options, **values)


def config_origins(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, str]:
    """Where each setting's value comes from: the last layer that sets it (else `default`)."""
    origins = {}
    for name, layer in layers:
        origins.update(dict.fromkeys(layer, name))
    return origins


def _check_rules(values: Mapping[str, Any], flags: Mapping[str, Any]) -> None:
    """Every value within its setting's Rule; the error names the flag or `--set` key."""
    for key, value in values.items():
        problem = FIELDS[key].metadata.get("rule", Rule()).problem(value)
        if problem:
            given = f"{flag_name(key)} {value}" if key in flags else f"{key}={value!r}"
            raise ConfigError(f"{given}: {problem}")


def _last_layer_setting(layers: Sequence[tuple[str, Mapping[str, Any]]], key: str) -> int:
    """Index of the last layer that sets `key` (-1: none); `iters` set to None counts not."""
    found = [i for i, (_, layer) in enumerate(layers) if layer.get(key) is not None]
    return found[-1] if found else -1


def with_resize_options(layer: Mapping[str, Any], recipe: Recipe) -> Mapping[str, Any]:
    """`layer` plus, where it sets `img_size`, the model options that make the network run at
    that size (the recipe's `resize_options`), unless the layer sets them itself."""
    if recipe.resize_options is None or "img_size" not in layer:
        return layer
    size = coerce("img_size", layer["img_size"], int, None)
    return {**recipe.resize_options(size), **layer}


def check_freeze(value: str) -> None:
    if value not in ("none", "heads") and not (value.isdigit() and int(value) >= 0):
        raise ConfigError(
            f"setting 'freeze': expected none, heads or a number of backbone stages, got {value!r}"
        )


def parse_sets(sets: Iterable[str], recipe: Recipe) -> dict[str, Any]:
    """Parse `key=value` strings; values go through ast.literal_eval, else stay strings."""
    parsed = {}
    for item in sets:
        key, raw = split_setting(item)
        if raw is None or not key:
            raise ConfigError(f"--set '{item}': expected key=value")
        if key not in FIELDS and key not in recipe.options:
            raise ConfigError(_unknown_key(key, recipe))
        parsed[key] = _literal(raw)
    return parsed


def parse_field_sets(sets: Iterable[str], allowed: Sequence[str], command: str) -> dict[str, Any]:
    """`key=value` strings naming only the settings in `allowed` (what `command` uses), each
    checked against its declared type."""
    parsed = {}
    for item in sets:
        key, raw = split_setting(item)
        if raw is None or not key:
            raise ConfigError(f"--set '{item}': expected key=value")
        if key not in allowed:
            hint = did_you_mean(key, allowed)
            raise ConfigError(f"--set {key}: {command} takes {', '.join(allowed)}{hint}")
        parsed[key] = coerce(key, _literal(raw), HINTS[key], FIELDS[key].default)
    return parsed


def _literal(raw: str) -> Any:
    """A `--set` value: a Python literal, else the text itself."""
    try:
        return ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        return raw.strip()


def split_setting(item: str) -> tuple[str, str | None]:
    """`key=value` -> (key, value): the key stripped, `-` read as `_` (`--set lr-steps=...`),
    the value as written (None when there is no `=`)."""
    key, sep, raw = item.partition("=")
    return key.strip().replace("-", "_"), raw if sep else None


def parse_model_sets(sets: Iterable[str], recipe: Recipe) -> dict[str, Any]:
    """`key=value` strings naming only the recipe's model options (`segcli eval --set
    output_stride=8`), checked against the options' types."""
    options = {}
    for key, value in parse_sets(sets, recipe).items():
        if key not in recipe.options:
            known = ", ".join(recipe.options) or "none"
            raise ConfigError(f"--set {key}: only model options can change here ({known})")
        options[key] = coerce(key, value, type(recipe.options[key]), recipe.options[key])
    return options


def config_from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """Rebuild a TrainConfig saved with `to_dict` (keys this version does not know are dropped)."""
    known = {k: v for k, v in values.items() if k in FIELDS or k in ("recipe", "model")}
    for key in ("lr_steps", "scale_range"):
        if key in known:
            known[key] = tuple(known[key])
    return TrainConfig(**known)


# Other tools' names for segcli settings (PyTorch, Ultralytics, Detectron2, MMSeg).
ALIASES = {
    "learning_rate": "lr", "lr0": "lr", "base_lr": "lr", "batch": "batch_size",
    "imgsz": "img_size", "image_size": "img_size", "crop_size": "img_size", "max_iters": "iters",
    "max_iter": "iters", "iterations": "iters", "wd": "weight_decay", "decay": "weight_decay",
    "num_workers": "workers", "classes": "num_classes", "nc": "num_classes", "steps": "lr_steps",
    "warmup": "warmup_iters", "freeze_at": "freeze", "clip_grad": "grad_clip",
}  # fmt: skip


def _unknown_key(key: str, recipe: Recipe) -> str:
    if key in ALIASES:
        return f"unknown setting '{key}' for recipe {recipe.name}; did you mean {ALIASES[key]}?"
    hint = did_you_mean(key, sorted([*FIELDS, *recipe.options]))
    return f"unknown setting '{key}' for recipe {recipe.name}{hint}"
