"""`segcli benchmark`: a recipe's inference speed (or training throughput), measured the way a
user runs it, with parameters, FLOPs, peak memory and, for instance models, where the time goes.

Inference is timed from uint8 RGB images to final results on the host (normalisation, the
model, the copy back, then the argmax class map, or every detection's mask binarised at 0.5 as
`segcli infer` does), synchronised on CUDA, after warm-up calls.

`--img-size S` is the size of the input images and, for a model that resizes its input itself
(its recipe's `resize_options`), also the size the network runs at, unless `--set` names
those options. Without it, an instance model's images are
as large as its own resize target (the paper's size), so nothing is resampled twice. Every
result reports `net_size`, the [H, W] the network actually ran at, and which of the recipe's
`variants` it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from segcli import io, tasks
from segcli.commands import benchmark_stages as stages
from segcli.commands.benchmark_measures import (
    count_gflops,
    describe_device,
    process_peak_rss_mb,
    speed,
    time_interleaved,
    versions,
)
from segcli.config import BUILTIN_DATA, parse_model_sets, resolve_config
from segcli.data.shapes import CLASS_NAMES, ShapesDataset
from segcli.engine import checkpoint
from segcli.engine.device import select_device, select_precision
from segcli.errors import ConfigError
from segcli.nn.batch import check_min_batch
from segcli.recipe import REFERENCE_CLASSES, Recipe, get_recipe
from segcli.report.benchmark import SHARED_PROCESS, results_table, stages_table


@dataclass(frozen=True)
class BenchSpec:
    recipe: str
    train: bool = False  # training images/s instead of inference fps
    img_size: int | None = None  # None: the recipe's (or the checkpoint's) size; sets the
    # model's own resize options (the recipe's resize_options) unless `sets` names them
    batch_size: int = 1
    device: str = "auto"
    warmup: int = 10
    iters: int = 50
    checkpoint: Path | None = None  # None: random weights, VOC 21 / COCO 81 classes
    variant: str | None = None  # one of the recipe's variants: its model options
    sets: tuple[str, ...] = ()  # model options, key=value


def run_benchmarks(specs: list[BenchSpec]) -> list[dict]:
    """Measure every spec side by side: the timed calls alternate between them, so load on a
    shared machine slows all alike. Each result: fps, latency percentiles, params, GFLOPs,
    peak memory (see Subject.peak_memory), detections per image, the network's input size
    and, for instance models, the per-stage breakdown."""
    for spec in specs:
        _check(spec)
    subjects = [Subject(spec) for spec in specs]
    devices = {s.device for s in subjects}
    times = time_interleaved([s.call for s in subjects], specs[0].warmup, specs[0].iters, devices)
    shared = len(subjects) > 1
    return [subject.result(t, shared) for subject, t in zip(subjects, times)]


class Subject:
    """One recipe (or checkpoint) ready to run: its model, inputs and the call to time."""

    def __init__(self, spec: BenchSpec):
        self.spec = spec
        self.device = select_device(spec.device)
        torch.manual_seed(0)  # the same random weights for variants of one architecture
        self.model, self.recipe, cfg, self.num_classes = load_model(spec, device=self.device)
        self.options = {**self.recipe.options, **cfg.model}
        size = spec.img_size or resize_target(self.recipe, self.options) or cfg.img_size
        self.cfg = dataclasses.replace(
            cfg, data=BUILTIN_DATA, img_size=size, batch_size=spec.batch_size
        )
        if spec.train:
            if self.num_classes < len(CLASS_NAMES):
                raise ConfigError(
                    f"--train uses the built-in data's {len(CLASS_NAMES)} classes; "
                    f"this model has {self.num_classes}"
                )
            check_min_batch(self.model, self.recipe.name, spec.batch_size)
            self.call = train_step(self.recipe, self.model, self.cfg, self.device)
        else:
            images = sample_images(self.cfg.img_size, spec.batch_size)
            predict = predictor(self.recipe, self.model, self.device)
            self.call = _no_grad(lambda: predict(images))

    def result(self, times: list[float], shared: bool = False) -> dict:
        """The measurements; `shared`: other subjects live in this process (peak memory)."""
        spec, cfg = self.spec, self.cfg
        peak, peak_note = self.peak_memory(shared)
        with recording_net_size(self.model) as seen:  # the FLOP count's call runs the network
            flops, outputs = count_gflops(self.call)
        gflops = flops / spec.batch_size  # with --train: fwd + bwd
        out = {
            "recipe": self.recipe.name,
            "task": self.recipe.task,
            "mode": "train" if spec.train else "fps",
            "device": describe_device(self.device),
            "img_size": cfg.img_size,
            "net_size": seen[0] if seen else [cfg.img_size, cfg.img_size],
            "batch_size": spec.batch_size,
            "num_classes": self.num_classes,
            "model_options": self.options,
            "variant": variant_of(self.recipe, self.options),
            "params": sum(p.numel() for p in self.model.parameters()),
            **speed(times, spec.batch_size),
            "gflops": gflops,
            "detections_per_image": None,
            **versions(),
        }
        if not spec.train and self.recipe.task == "instance":
            out["detections_per_image"] = float(np.mean([len(o["scores"]) for o in outputs]))
            repeats = min(3, spec.iters)
            out["stages_ms"] = stages.stage_breakdown(self.model, self.call, self.device, repeats)
        if peak is None and peak_note != SHARED_PROCESS:
            peak = process_peak_rss_mb()  # CPU: read last, after every call
        out["peak_memory_mb"], out["peak_memory_note"] = peak, peak_note
        return out

    def peak_memory(self, shared: bool) -> tuple[float | None, str]:
        """(MiB or None, what it covers).

        CUDA: the peak allocation during one call of this subject's own (the counter reset just
        before it); with other subjects on the device, their memory is left out: this model's
        weights plus what the call allocates above what was allocated before it. CPU: the
        process's peak resident set, read after everything else ran (None here: result reads
        process_peak_rss_mb last); it is the whole process's, so with several subjects in one
        process there is no honest per-subject figure (None, SHARED_PROCESS).
        """
        if self.device.type != "cuda":
            return None, SHARED_PROCESS if shared else "peak RSS of the process (CPU)"
        stages.sync(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        self.call()
        stages.sync(self.device)
        peak = torch.cuda.max_memory_allocated(self.device)
        if not shared:
            return peak / 2**20, "peak CUDA allocation during one call"
        own = peak - before + state_bytes(self.model)
        return own / 2**20, "CUDA: weights + peak allocation of one call"


def variant_of(recipe: Recipe, model_options: dict) -> dict | None:
    """{name, options, note} of the first of the recipe's variants whose options the model has
    (however they were set: --variant, --set or the defaults), or None."""
    for name, variant in recipe.variants.items():
        if all(model_options.get(k) == v for k, v in variant["options"].items()):
            return {"name": name, **variant}
    return None


def variant_sets(recipe: Recipe, name: str | None, given: set[str]) -> list[str]:
    """`key=value` model options of the recipe's variant `name` (none for None); a ConfigError
    for a name the recipe lacks, or an option that `--set` (`given`) names too."""
    if name is None:
        return []
    if name not in recipe.variants:
        known = " or ".join(recipe.variants)
        if not known:
            raise ConfigError(f"--variant: recipe {recipe.name} has no variants")
        raise ConfigError(f"--variant: expected {known}, got {name!r}")
    options = recipe.variants[name]["options"]
    clash = sorted(given & set(options))
    if clash:
        raise ConfigError(f"--set {clash[0]}: variant {name} sets it; drop one of them")
    return [f"{key}={value}" for key, value in options.items()]


def resize_target(recipe: Recipe, model_options: dict) -> int | None:
    """The side a model that resizes its own input resizes it to (the option that
    `resize_options` sets first), or None for models that take their input as it is."""
    if recipe.resize_options is None:
        return None
    return model_options[next(iter(recipe.resize_options(1)))]


def size_sets(recipe: Recipe, img_size: int | None, given: set[str]) -> dict[str, int]:
    """The model options (name -> value) that make the network run at --img-size (the recipe's
    `resize_options`); options named in `given` (by --set) are left alone."""
    if img_size is None or recipe.resize_options is None:
        return {}
    return {k: v for k, v in recipe.resize_options(img_size).items() if k not in given}


@contextlib.contextmanager
def recording_net_size(model: torch.nn.Module):
    """Collects [H, W] of the first image as the model's `transform` child (torchvision's
    detection models, YOLACT) hands it to the network: a tensor [B, 3, H, W] or an ImageList
    (its image_sizes, before the padding to a multiple of 32). Empty for models without one."""
    seen: list[list[int]] = []
    transform = getattr(model, "transform", None)
    if not isinstance(transform, torch.nn.Module):
        yield seen
        return

    def hook(module, args, output):
        if isinstance(output, torch.Tensor):
            seen.append(list(output.shape[-2:]))
        elif isinstance(output, tuple) and hasattr(output[0], "image_sizes"):
            seen.append(list(output[0].image_sizes[0]))

    handle = transform.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def state_bytes(model: torch.nn.Module) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _no_grad(fn: Callable[[], object]) -> Callable[[], object]:
    def call():
        with torch.inference_mode():
            return fn()

    return call


def _check(spec: BenchSpec) -> None:
    for name in ("batch_size", "iters"):
        if getattr(spec, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if spec.warmup < 0:
        raise ConfigError("--warmup must be 0 or more")
    if spec.img_size is not None and spec.img_size < 32:
        raise ConfigError(f"--img-size {spec.img_size}: too small (at least 32)")


def load_model(spec: BenchSpec, device) -> tuple[torch.nn.Module, Recipe, object, int]:
    """(model in eval mode on `device`, recipe, config, class count): the checkpoint's, or the
    paper's architecture with random weights."""
    recipe = get_recipe(spec.recipe)
    given = set(parse_model_sets(spec.sets, recipe))  # checked here, checkpoint or not
    sets = [*spec.sets, *variant_sets(recipe, spec.variant, given)]
    options = parse_model_sets(sets, recipe)
    sizes = size_sets(recipe, spec.img_size, set(options))
    if spec.checkpoint is None:
        cfg = resolve_config(recipe, quick=False)  # the paper's settings
        cfg = dataclasses.replace(cfg, model={**cfg.model, **options, **sizes})
        num_classes = REFERENCE_CLASSES[recipe.task]
        model = recipe.build_model(num_classes, pretrained=False, **cfg.model)
        return model.to(device).eval(), recipe, cfg, num_classes
    # restore_model applies `key=value` strings to the checkpoint's own options.
    sets += [f"{key}={value}" for key, value in sizes.items()]
    model, saved, cfg, names, _ = checkpoint.restore_model(spec.checkpoint, device, sets)
    if saved.name != recipe.name:
        raise ConfigError(f"{spec.checkpoint}: a {saved.name} checkpoint, not {recipe.name}")
    return model, recipe, cfg, len(names)


def sample_images(size: int, count: int) -> list[np.ndarray]:
    """`count` uint8 RGB images of size x size (the built-in shapes, so detectors see objects)."""
    source = ShapesDataset("val", size=size, count=count)
    return [source.load(i)["image"] for i in range(count)]


def predictor(recipe: Recipe, model, device) -> Callable[[list[np.ndarray]], object]:
    """images -> results on the host, as `segcli infer` computes them, batched (instance masks
    binarised at 0.5, for every detection: infer's score threshold is not applied)."""
    task = tasks.for_recipe(recipe)
    return lambda images: task.predict(model, images, device)


def train_step(recipe: Recipe, model, cfg, device) -> Callable[[], None]:
    """One optimizer step on a fixed batch of the built-in data through the real pipeline: the
    training loop's model placement (channels_last) and optimizer step (gradient clipping, the
    GradScaler), one micro-batch per step."""
    from segcli.data.loader import train_loader
    from segcli.engine.freeze import train_mode
    from segcli.engine.optim import build_optimizer
    from segcli.engine.setup import place_model
    from segcli.engine.trainer import optimizer_step

    task = tasks.for_recipe(recipe)
    data = task.build_data(cfg, splits=("train",))
    loader = train_loader(data.train, cfg.batch_size, 0, cfg.seed, collate_fn=data.collate_fn)
    batch = next(iter(loader))
    model = place_model(model, cfg, device)
    optimizer = build_optimizer(cfg, model)
    precision = select_precision(device, cfg.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=precision.needs_scaler)
    train_mode(model)  # frozen batch norm (--freeze) stays in eval mode, as in training
    torch.set_flush_denormal(True)  # as the training loop does

    def step():
        losses = task.losses(model, batch, device, precision, cfg)
        scaler.scale(sum(losses.values())).backward()
        optimizer_step(model, optimizer, scaler, cfg.grad_clip)

    return step


def benchmark(
    spec: BenchSpec, compare: bool, json_out: Path | None, console: Console
) -> list[dict]:
    """`segcli benchmark`: measure, print the tables, write --json; returns the results.

    `compare`: every variant of the recipe side by side; the JSON is the first one's result
    with all of them under "compare", each with its fps relative to the first's."""
    specs = compared_specs(spec) if compare else [spec]
    results = run_benchmarks(specs)
    titles = [s.variant for s in specs] if compare else [results[0]["recipe"]]
    console.print(results_table(results, titles))
    if any("stages_ms" in r for r in results):
        console.print(stages_table(results, titles))
    if json_out:
        payload = dict(results[0])
        if compare:
            base = results[0]["fps"]
            payload["compare"] = {
                t: {**r, "fps_ratio": r["fps"] / base} for t, r in zip(titles, results)
            }
        io.write_json(json_out, payload)
    return results


def compared_specs(spec: BenchSpec) -> list[BenchSpec]:
    """One spec per variant of the recipe (`--compare`), in the recipe's order."""
    recipe = get_recipe(spec.recipe)
    if not recipe.variants:
        raise ConfigError(f"--compare: recipe {recipe.name} has no variants")
    if spec.variant or spec.train:
        raise ConfigError("--compare times inference of every variant; drop --variant/--train")
    return [dataclasses.replace(spec, variant=name) for name in recipe.variants]
