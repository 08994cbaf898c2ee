"""`segcli export`: every semantic recipe to ONNX and TorchScript, Mask R-CNN to ONNX, YOLACT's
heads with the assembly outside; each file run again here and compared with PyTorch."""

import json
import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from segcli.commands import export
from segcli.config import resolve_config
from segcli.engine import checkpoint
from segcli.export.forms import NormalisedSegmenter
from segcli.recipe import get_recipe, list_recipes
from segcli.recipes.nets.yolact_export import assemble_detections

from helpers import TINY_RCNN, TINY_YOLACT, settings

NAMES = ("background", "square", "circle", "triangle")
SEMANTIC = [r.name for r in list_recipes() if r.task == "semantic"]
# ResNet-18 (basic blocks, dilated alike) instead of test_recipes' ResNet-50: half the graph
DEEPLAB = {"backbone": "resnet18", "width": 0.125}
SMALL = {
    **{f"fcn{s}s": {"width": 0.125, "fc_channels": 32} for s in (32, 16, 8)},
    "unet": {"base": 8},
    "deeplabv1": {"width": 0.125, "fc_channels": 64},
    "deeplabv2": DEEPLAB,
    "deeplabv3": {**DEEPLAB, "multi_grid": (1, 2), "channels": 32},
    "deeplabv3plus": {**DEEPLAB, "multi_grid": (1, 2), "channels": 32},
    "deeplabv3plus_r101": {**DEEPLAB, "multi_grid": (1, 2), "channels": 32},
    "mask_rcnn": {**TINY_RCNN, "min_size": 48, "max_size": 64},
    "yolact": TINY_YOLACT,
}
FORMATS = ("onnx", "torchscript")


def untrained_checkpoint(path, name: str):
    """A checkpoint as training writes it, of a small untrained model whose zero-initialised
    layers (FCN's scores) are random, so every output varies with the input."""
    recipe = get_recipe(name)
    cfg = resolve_config(recipe, {"img_size": 32}, settings(SMALL[name]), quick=False)
    torch.manual_seed(0)
    model = recipe.build_model(len(NAMES), **cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0, 0.5)
    checkpoint.save(path, {"model": model.state_dict(), "recipe": recipe.name,
                           "task": recipe.task, "config": cfg.to_dict(),
                           "class_names": list(NAMES)})  # fmt: skip
    return path


def load_exported(path, fmt):
    """The exported file as a function of a tensor, and its metadata."""
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = session.get_modelmeta().custom_metadata_map
        name = session.get_inputs()[0].name
        return (lambda x: [torch.from_numpy(o) for o in session.run(None, {name: x.numpy()})]), meta
    files = {"segcli.json": ""}
    with warnings.catch_warnings():  # torch.jit.load's deprecation FutureWarning
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), _extra_files=files)

    def run(x):
        with torch.jit.optimized_execution(False):
            return [module(x)]

    return run, json.loads(files["segcli.json"])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", SEMANTIC)
def test_semantic_recipe_exports_with_dynamic_axes(cli, in_tmp, name, fmt):
    ckpt = untrained_checkpoint(in_tmp / "best.pt", name)
    out = in_tmp / f"model.{fmt}"
    result = cli("export", ckpt, "--format", fmt, "--out", out, "--dynamic")
    assert result.exit_code == 0, result.output
    assert (
        "logits" in result.output and "1x3x32x32" in result.output and "2x3x29x45" in result.output
    )
    run, meta = load_exported(out, fmt)
    assert meta["recipe"] == name and json.loads(meta["class_names"]) == list(NAMES)
    # a third size and batch, in [0, 1] like any image the file is meant for
    images = torch.rand(3, 3, 37, 50, generator=torch.Generator().manual_seed(1))
    model = checkpoint.restore_model(ckpt, "cpu")[0]
    with torch.no_grad():
        expected = NormalisedSegmenter(model).eval()(images)
    (logits,) = run(images)
    assert expected.shape == (3, 4, 37, 50) and expected.abs().max() > 0.1
    assert (logits - expected).abs().max() < 1e-4


def test_mask_rcnn_onnx_export_reproduces_the_detections(cli, in_tmp):
    ckpt = untrained_checkpoint(in_tmp / "best.pt", "mask_rcnn")
    out = in_tmp / "mask_rcnn.onnx"
    result = cli("export", ckpt, "--out", out, "--img-size", "48")
    assert result.exit_code == 0, result.output
    assert "boxes (px)" in result.output and "masks" in result.output
    run, meta = load_exported(out, "onnx")
    assert meta["outputs"] == "boxes, labels, scores, masks"
    image = export.test_images(48, 2)[1]
    model = checkpoint.restore_model(ckpt, "cpu")[0]
    with torch.no_grad():
        expected = model([image])[0]
    boxes, labels, scores, masks = run(image)
    assert len(scores) == len(expected["scores"]) > 0
    assert (boxes - expected["boxes"]).abs().max() < 1e-3
    assert torch.equal(labels, expected["labels"])
    assert (scores - expected["scores"]).abs().max() < 1e-5
    assert (masks - expected["masks"]).abs().max() < 1e-4


def test_yolact_heads_with_the_outside_assembly_equal_the_model(cli, in_tmp):
    ckpt = untrained_checkpoint(in_tmp / "best.pt", "yolact")
    out = in_tmp / "yolact.onnx"
    result = cli("export", ckpt, "--format", "onnx", "--out", out, "--dynamic")
    assert result.exit_code == 0, result.output
    assert "assemble_detections" in result.output and "prototypes" in result.output
    run, meta = load_exported(out, "onnx")
    assert "assembly and Fast NMS run outside" in meta["note"]
    images = [image[:, :40, :56] for image in export.test_images(56, 2)]
    model = checkpoint.restore_model(ckpt, "cpu")[0]
    with torch.no_grad():
        expected = model(images)
    outputs = [o.numpy() for o in run(torch.stack(images))]
    assert [o.shape[0] for o in outputs[:4]] == [2, 2, 2, 2]
    detections = assemble_detections(outputs, [(40, 56)] * 2)
    for got, want in zip(detections, expected, strict=True):
        assert len(got["scores"]) == len(want["scores"]) > 0
        assert torch.equal(got["labels"], want["labels"])
        for key in ("boxes", "scores", "masks"):
            assert (got[key] - want[key]).abs().max() < 1e-4, key


def test_a_mismatch_writes_nothing_and_exits_3(cli, in_tmp, monkeypatch):
    ckpt = untrained_checkpoint(in_tmp / "best.pt", "fcn8s")
    out = in_tmp / "model.onnx"
    out.write_bytes(b"previous export")
    honest = export.RUNNERS["onnx"]

    def off_by_a_little(path):  # 10 x the tolerance: 1e-4 of the logits' scale
        run = honest(path)
        return lambda x: [o + 1e-3 * max(1.0, np.abs(o).max()) for o in run(x)]

    monkeypatch.setitem(export.RUNNERS, "onnx", off_by_a_little)
    result = cli("export", ckpt, "--out", out)
    assert result.exit_code == 3
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("error: the export differs from PyTorch at 1x3x32x32: logits max ")
    assert message.endswith(f"; {out} not written")
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in in_tmp.iterdir()) == ["best.pt", "model.onnx"]


def test_an_exporter_failure_is_one_line(cli, in_tmp, monkeypatch):
    ckpt = untrained_checkpoint(in_tmp / "best.pt", "fcn32s")

    def refuse(*args, **kwargs):
        raise RuntimeError("Unsupported: ONNX export of operator foo\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    result = cli("export", ckpt)
    assert result.exit_code == 3
    lines = result.output.strip().splitlines()
    assert lines == ["error: fcn32s cannot be exported: RuntimeError: Unsupported: ONNX export "
                     "of operator foo"]  # fmt: skip
    assert sorted(p.name for p in in_tmp.iterdir()) == ["best.pt"]


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: [d / "notes.txt"], "not a checkpoint: a text file"),
        (lambda d: [d / "best.pt", "--format", "tflite"], "--format tflite: expected onnx or"),
        (lambda d: [d / "best.pt", "--out", d], "is a folder"),
        (lambda d: [d / "best.pt", "--out", d / "notes.txt" / "m.onnx"], "cannot write there"),
        (lambda d: [d / "best.pt", "--img-size", "8"], "--img-size 8: at least 32"),
    ],
    ids=["not-a-checkpoint", "unknown-format", "out-is-a-folder", "unwritable-out", "tiny-size"],
)
def test_bad_input_is_one_line_and_exit_2(cli, in_tmp, make_args, message):
    untrained_checkpoint(in_tmp / "best.pt", "fcn32s")
    (in_tmp / "notes.txt").write_text("not a checkpoint")
    result = cli("export", *make_args(in_tmp))
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and message in result.output
    assert sorted(p.name for p in in_tmp.iterdir()) == ["best.pt", "notes.txt"]


def test_missing_onnxruntime_says_how_to_install(cli, in_tmp, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a)
    )
    result = cli("export", untrained_checkpoint(in_tmp / "best.pt", "fcn32s"))
    assert result.exit_code == 2
    assert "needs onnxruntime: pip install 'segcli[export]'" in result.output


def test_onnx_model_is_valid_and_named(cli, in_tmp):
    ckpt = untrained_checkpoint(in_tmp / "best.pt", "fcn32s")
    assert cli("export", ckpt).exit_code == 0  # default --out: best.onnx beside best.pt
    model = onnx.load(in_tmp / "best.onnx")
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert model.opset_import[0].version == export.OPSET
