"""`segcli export`: a checkpoint to ONNX or TorchScript, then the exported file run on a test
image and compared with PyTorch (segcli/export/parity.py) before it replaces --out."""

from __future__ import annotations

import importlib.util
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from segcli import io
from segcli.data.shapes import ShapesDataset
from segcli.engine import checkpoint
from segcli.errors import ConfigError, DataError, first_line
from segcli.export.forms import ExportForm, export_form
from segcli.export.parity import (
    Check,
    ExportError,
    ParityError,
    detection_differences,
    parity_table,
    tensor_differences,
)

# torchvision's detection models export only through the TorchScript-based exporter
# (torch.export cannot trace them), so every model takes that one path.
OPSET = 17
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript"}
RUNTIMES = {"onnx": "onnxruntime", "torchscript": "torch.jit"}
SMALLEST_SIDE = 32


@dataclass(frozen=True)
class Exported:
    path: Path
    seconds: float  # the exporter's time alone
    checks: list[Check]


def export_checkpoint(
    path: Path,
    fmt: str,
    out: Path | None = None,
    img_size: int | None = None,
    dynamic: bool = False,
    console: Console | None = None,
) -> Exported:
    """Write `path`'s model to `out` in `fmt`; nothing is written unless the exported model
    matches PyTorch within TOLERANCES (else ParityError, exit code 3)."""
    console = console or Console()
    fmt = _check_format(fmt)
    if img_size is not None and img_size < SMALLEST_SIDE:
        raise ConfigError(f"--img-size {img_size}: at least {SMALLEST_SIDE}")
    model, recipe, cfg, names, _ = checkpoint.restore_model(path, "cpu")
    out = Path(out) if out else Path(path).with_suffix(SUFFIXES[fmt])
    _check_out(out)  # may create its folder: after every other check
    size = img_size or cfg.img_size
    image = test_images(size, 1)[0]
    form = export_form(model, recipe.task, image)
    meta = metadata(recipe, names, form, size, dynamic)
    with io.atomic_path(out) as tmp:
        start = time.perf_counter()
        _export(WRITERS[fmt], form, image, tmp, dynamic, meta, recipe.name)
        seconds = time.perf_counter() - start
        run = RUNNERS[fmt](tmp)
        checks = [check(form, model, run, [image])]
        if dynamic:
            checks.append(check(form, model, run, other_size_images(form, size)))
        report(console, recipe.name, fmt, out, tmp, seconds, form, dynamic, checks)
    console.print(f"wrote {out}", highlight=False)
    return Exported(out, seconds, checks)


def _check_format(fmt: str) -> str:
    if fmt not in SUFFIXES:
        raise ConfigError(f"--format {fmt}: expected {' or '.join(SUFFIXES)}")
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if fmt == "onnx" and missing:
        raise ConfigError(
            f"--format onnx needs {' and '.join(missing)}: pip install 'segcli[export]'"
        )
    return fmt


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise DataError(f"{out}: is a folder; --out names the file to write")
    reason = io.check_writable(out.parent)
    if reason:
        raise DataError(reason)


def test_images(size: int, count: int) -> list[torch.Tensor]:
    """Built-in shapes images [3,size,size] in [0,1] (objects a trained model detects)."""
    shapes = ShapesDataset("val", size=size, count=count)
    return [
        torch.from_numpy(shapes.load(i)["image"]).permute(2, 0, 1).float() / 255
        for i in range(count)
    ]


def other_size_images(form: ExportForm, size: int) -> list[torch.Tensor]:
    """A second input whose free axes differ from the first: two images (where the batch is
    free) of a height and width that are no multiple of 32."""
    h, w = size * 3 // 4 + 5, size + 13
    return [image[:, :h, :w] for image in test_images(max(h, w), 2 if form.batched else 1)]


def metadata(recipe, names, form: ExportForm, size: int, dynamic: bool) -> dict[str, str]:
    """What a user of the file needs to know, stored in it (ONNX metadata_props, TorchScript
    extra file segcli.json)."""
    from segcli import __version__

    return {
        "segcli_version": __version__,
        "recipe": recipe.name,
        "task": recipe.task,
        "class_names": json.dumps(list(names)),
        "input": form.input_help,
        "outputs": ", ".join(form.output_names),
        "img_size": str(size),
        "dynamic": str(dynamic).lower(),
        **({"note": form.note} if form.note else {}),
    }


def _export(writer, form, image, target, dynamic, meta, name) -> None:
    """Run `writer`; an exporter failure is one line (exit code 3)."""
    try:
        with warnings.catch_warnings():  # tracer and deprecation warnings are not the user's
            warnings.simplefilter("ignore")
            writer(form, form.example(image), target, dynamic, meta)
    except Exception as exc:  # the exporters raise many types; each is one line to the user
        raise ExportError(
            f"{name} cannot be exported: {first_line(exc, 160, with_type=True)}"
        ) from None


def write_onnx(form: ExportForm, example, target: Path, dynamic: bool, meta: dict) -> None:
    import onnx

    axes = {form.input_name: form.input_axes, **form.output_axes} if dynamic else None
    torch.onnx.export(
        form.module,
        (example,),
        str(target),
        dynamo=False,
        opset_version=OPSET,
        input_names=[form.input_name],
        output_names=list(form.output_names),
        dynamic_axes=axes,
    )
    model = onnx.load(str(target))
    onnx.helper.set_model_props(model, meta)
    onnx.save(model, str(target))


def write_torchscript(form: ExportForm, example, target: Path, dynamic: bool, meta: dict) -> None:
    """A trace: the sizes it records stay symbolic, so other input sizes run too."""
    with torch.no_grad():
        traced = torch.jit.trace(form.module, (example,), check_trace=False)
    torch.jit.save(traced, str(target), _extra_files={"segcli.json": json.dumps(meta)})


def onnx_runner(path: Path) -> Callable[[torch.Tensor], list]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # its own error lines would repeat ours
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x.numpy()})


def torchscript_runner(path: Path) -> Callable[[torch.Tensor], list]:
    with warnings.catch_warnings():  # torch.jit.load's FutureWarning is not the user's
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu")

    def run(x: torch.Tensor) -> list:
        # the profiling executor would re-optimise the graph for every new input shape
        with torch.no_grad(), torch.jit.optimized_execution(False):
            out = module(x)
        return list(out) if isinstance(out, tuple | list) else [out]

    return run


WRITERS = {"onnx": write_onnx, "torchscript": write_torchscript}
RUNNERS = {"onnx": onnx_runner, "torchscript": torchscript_runner}


def check(form: ExportForm, model, run, images: list[torch.Tensor]) -> Check:
    """Run the exported model and PyTorch on `images` (one size) and compare their outputs."""
    x = torch.stack(images) if form.batched else images[0]
    try:
        outputs = [np.asarray(o) for o in run(x)]
    except Exception as exc:  # onnxruntime's and TorchScript's failures: one line
        shape = "x".join(map(str, x.shape))
        message = (
            f"the exported model fails on a {shape} input: {first_line(exc, 160, with_type=True)}"
        )
        raise ExportError(message) from None
    diffs, count = [], None
    with torch.no_grad():
        if form.compare_outputs:
            reference = form.module(x)
            reference = reference if isinstance(reference, tuple) else (reference,)
            diffs = tensor_differences(form.output_names, reference, outputs)
        if form.detections is not None:
            sizes = [tuple(image.shape[-2:]) for image in images]
            found, count = detection_differences(model(images), form.detections(outputs, sizes))
            diffs += found
    return Check(tuple(x.shape), diffs, count)


def report(console, name, fmt, out, written, seconds, form, dynamic, checks) -> None:
    """Print what was exported and its checks; ParityError when one exceeds its tolerance."""
    size_mb = written.stat().st_size / 2**20
    label = f"ONNX opset {OPSET}" if fmt == "onnx" else "TorchScript"
    console.print(
        f"exported {name} ({label}, {size_mb:.1f} MB) in {seconds:.1f} s", highlight=False
    )
    outputs = ", ".join(form.output_names)
    console.print(f"input {form.input_help}; outputs: {outputs}", highlight=False)
    if dynamic:
        free = ", ".join(form.input_axes.values())
        console.print(f"dynamic axes: {free} (checked at a second size)", highlight=False)
    if form.note:
        console.print(f"note: {form.note}", highlight=False, soft_wrap=True)
    console.print(parity_table(checks, RUNTIMES[fmt]))
    if any(c.detections == 0 for c in checks):
        console.print("warning: no detections on the test image, so no box or mask was compared")
    bad = [(c, d) for c in checks for d in c.differences if not d.ok]
    if bad:
        (where, worst), *_ = bad
        raise ParityError(
            f"the export differs from PyTorch at {where.title}: {worst}; {out} not written"
        )
