"""Panoptic inference and superpixel refinement through the real CLI, on two tiny checkpoints
trained on the shapes data: `infer --panoptic` (COCO panoptic files that `eval --metric pq`
reads back), `eval --panoptic` (PQ on the shapes val split out of the box), `--superpixels` on
eval and infer, and one-line errors for bad combinations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from segcli.cli import app
from segcli.commands.panoptic import load_panoptic_models
from segcli.data.coco import ShapesInstances
from segcli.data.panoptic import read_panoptic_json, read_segment_png
from segcli.data.shapes_panoptic import write_shapes_panoptic
from segcli.engine import checkpoint
from segcli.metrics import SegMetrics
from segcli.tasks import for_recipe

from helpers import TINY_FCN, TINY_RCNN, TINY_SHAPES, set_flags

SIZE, VAL = 32, 4  # TINY_SHAPES: the semantic run's shapes images and val count
TINY_MASK_RCNN = set_flags({**TINY_RCNN, "rpn_proposals_train": 50, "box_batch_size": 16})


def train(out, *args) -> str:
    result = CliRunner().invoke(app, ["train", *map(str, args), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return str(out / "best.pt")


@pytest.fixture(scope="module")
def semantic(tmp_path_factory):
    out = tmp_path_factory.mktemp("fcn") / "run"
    return train(out, "fcn8s", *TINY_SHAPES, *TINY_FCN, "--iters", "2")


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    out = tmp_path_factory.mktemp("rcnn") / "run"
    return train(out, "mask_rcnn", *TINY_SHAPES, "--img-size", "48", *TINY_MASK_RCNN, "--iters", 2)


def user_error(result, *fragments) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def shapes_val_images(folder, count=VAL):
    """The shapes val images the semantic run validates on, as PNG files (image ids 1..count
    in file order, as the shapes panoptic ground truth numbers them)."""
    source = ShapesInstances("val", SIZE, count)
    folder.mkdir()
    for index in range(count):
        Image.fromarray(source.load(index)["image"]).save(folder / f"{source.name(index)}.png")
    return folder


def with_payload(path, target, **changes) -> str:
    """A copy of checkpoint `path` with payload entries (or `config` keys) changed."""
    payload = checkpoint.load(path)
    config = {**payload["config"], **changes.pop("config", {})}
    checkpoint.save(target, {**payload, "config": config, **changes})
    return str(target)


# --- infer --panoptic -------------------------------------------------------------------------


def test_infer_panoptic_writes_the_fusion_as_coco_panoptic(cli, in_tmp, semantic, instance):
    images = shapes_val_images(in_tmp / "images", count=2)
    args = ["--score-threshold", "0.0"]  # the tiny model's detections score low
    result = cli("infer", "--panoptic", semantic, instance, images, "--out", "out", *args)
    assert result.exit_code == 0, result.output
    doc = read_panoptic_json(in_tmp / "out" / "panoptic.json")
    assert doc.folder == in_tmp / "out" / "panoptic"
    assert [(c["name"], c["isthing"]) for c in doc.categories] == [
        ("square", 1), ("circle", 1), ("triangle", 1), ("background", 0)
    ]  # fmt: skip
    raw = json.loads((in_tmp / "out" / "panoptic.json").read_text())
    assert [i["file_name"] for i in raw["images"]] == [p.name for p in sorted(images.iterdir())]
    models = load_panoptic_models([semantic, instance], "cpu", score_threshold=0.0)
    things = 0
    for image_id, path in enumerate(sorted(images.iterdir()), start=1):
        ann = doc.annotations[image_id]
        written = read_segment_png(doc.folder / ann["file_name"])
        ids, segments = models(np.asarray(Image.open(path).convert("RGB")))
        assert (written == ids).all()
        assert [(s["id"], s["category_id"]) for s in ann["segments_info"]] == [
            (s["id"], s["category_id"]) for s in segments
        ]
        assert {s["id"]: s["area"] for s in ann["segments_info"]} == {
            int(k): int(v) for k, v in zip(*np.unique(ids[ids > 0], return_counts=True))
        }
        things += sum(s["isthing"] for s in segments)
        assert (in_tmp / "out" / f"{path.stem}_overlay.jpg").is_file()
    assert things > 0
    # either order: the checkpoints' tasks say which is which
    result = cli("infer", instance, images, "--panoptic", semantic, "--out", "swapped", *args)
    assert result.exit_code == 0, result.output
    swapped = (in_tmp / "swapped" / "panoptic.json").read_bytes()
    assert swapped == (in_tmp / "out" / "panoptic.json").read_bytes()


def test_eval_panoptic_on_shapes_equals_infer_then_eval_of_the_files(
    cli, in_tmp, semantic, instance
):
    """The out-of-the-box path (shapes ground truth built in memory) and the file path (infer
    --panoptic, shapes ground truth written as COCO panoptic, eval --gt/--pred-panoptic)."""
    result = cli("eval", "--panoptic", semantic, instance, "--json", "direct.json")
    assert result.exit_code == 0, result.output
    assert "panoptic quality" in result.output and "pq: " in result.output
    result = cli("infer", "--panoptic", semantic, instance, shapes_val_images(in_tmp / "val"))
    assert result.exit_code == 0, result.output
    write_shapes_panoptic(in_tmp / "gt.json", size=SIZE, count=VAL)
    pred = in_tmp / "runs" / "infer" / "panoptic.json"
    result = cli("eval", "--gt-panoptic", "gt.json", "--pred-panoptic", pred, "--json", "f.json")
    assert result.exit_code == 0, result.output
    direct, files = (json.loads((in_tmp / n).read_text()) for n in ("direct.json", "f.json"))
    assert direct == files
    assert direct["n_stuff"] == 1 and [r["name"] for r in direct["per_class"].values()] == [
        "square", "circle", "triangle", "background"
    ]  # fmt: skip


# --- bad input: one line, exit 2, nothing written ------------------------------------------


def test_two_semantic_checkpoints_are_refused(cli, in_tmp, semantic):
    images = shapes_val_images(in_tmp / "images", count=1)
    result = cli("infer", "--panoptic", semantic, semantic, images, "--out", "out")
    user_error(result, "an instance checkpoint (things)", "are both semantic")
    assert not (in_tmp / "out").exists()


def test_a_missing_checkpoint_is_named(cli, in_tmp, semantic):
    images = shapes_val_images(in_tmp / "images", count=1)
    result = cli("infer", "--panoptic", semantic, "nope.pt", images, "--out", "out")
    user_error(result, "nope.pt: checkpoint not found")
    assert not (in_tmp / "out").exists()


def test_checkpoints_without_a_shared_class_are_refused(cli, in_tmp, semantic, instance):
    images = shapes_val_images(in_tmp / "images", count=1)
    other = with_payload(semantic, in_tmp / "roads.pt", class_names=["road", "sky", "car", "tree"])
    result = cli("infer", "--panoptic", other, instance, images, "--out", "out")
    user_error(result, "no class name in common with", "roads.pt", "square, circle, triangle")
    assert not (in_tmp / "out").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--splash"], "--splash applies to an instance checkpoint alone"),
        (["--superpixels", "10", "--crf"], "alternative refinements"),
    ],
)
def test_infer_panoptic_flags_are_checked(cli, in_tmp, semantic, instance, args, fragment):
    images = shapes_val_images(in_tmp / "images", count=1)
    result = cli("infer", "--panoptic", semantic, instance, images, "--out", "out", *args)
    user_error(result, fragment)
    assert not (in_tmp / "out").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        ([], "--panoptic needs two checkpoints"),
        (["INST", "--metric", "miou"], "--metric miou: --panoptic gives pq"),
        (["INST", "--data", "somewhere"], "no --data"),
        (["INST", "--gt-panoptic", "gt.json"], "--gt-panoptic"),
    ],
)
def test_eval_panoptic_flags_are_checked(cli, in_tmp, semantic, instance, args, fragment):
    args = [instance if a == "INST" else a for a in args]
    user_error(cli("eval", "--panoptic", semantic, *args, "--json", "s.json"), fragment)
    assert not (in_tmp / "s.json").exists()


def test_eval_panoptic_needs_shapes_checkpoints(cli, in_tmp, semantic, instance):
    voc = with_payload(semantic, in_tmp / "voc.pt", config={"data": "/data/voc"})
    result = cli("eval", "--panoptic", voc, instance)
    user_error(result, "voc.pt: trained on /data/voc", "infer --panoptic")


# --- --superpixels ------------------------------------------------------------------------------


def test_eval_superpixels_is_the_majority_vote_in_each_superpixel(cli, in_tmp, semantic):
    """With one superpixel per image (SLIC gives one at 32 px and n = 1) the refined prediction
    is each image's majority class."""
    result = cli("eval", semantic, "--superpixels", "1", "--workers", "0", "--json", "s.json")
    assert result.exit_code == 0, result.output
    model, recipe, *_ = checkpoint.restore_model(semantic, "cpu")
    task = for_recipe(recipe)
    source = ShapesInstances("val", SIZE, VAL)
    metrics = SegMetrics(4, 255)
    for index in range(VAL):
        sample = source.load(index)
        (plain,) = task.predict(model, [sample["image"]], "cpu")
        voted = np.full_like(plain, np.bincount(plain.ravel(), minlength=4).argmax())
        metrics.update(torch.from_numpy(voted).long(), torch.from_numpy(sample["mask"]).long())
    scores = json.loads((in_tmp / "s.json").read_text())
    assert scores["miou"] == pytest.approx(metrics.compute()["miou"])


def test_infer_superpixels_refines_the_label_map(cli, in_tmp, semantic):
    images = shapes_val_images(in_tmp / "images", count=2)
    result = cli("infer", semantic, images, "--superpixels", "1", "--out", "out")
    assert result.exit_code == 0, result.output
    for path in images.iterdir():
        label = np.asarray(Image.open(in_tmp / "out" / path.name))
        assert label.shape == (SIZE, SIZE) and len(np.unique(label)) == 1


@pytest.mark.parametrize(
    "command, args, fragment",
    [
        ("eval", ["INST", "--superpixels", "10"], "apply to semantic recipes, not mask_rcnn"),
        ("infer", ["INST", "IMAGES", "--superpixels", "10"], "not mask_rcnn"),
        ("eval", ["SEM", "--superpixels", "0"], "--superpixels: expected at least 1 segment"),
        ("eval", ["SEM", "--superpixels", "10", "--crf"], "alternative refinements: give one"),
        (
            "eval",
            ["--pred", "p", "--gt", "g", "--num-classes", "2", "--superpixels", "5"],
            "--superpixels and --set need a checkpoint, not --pred/--gt",
        ),
    ],
)
def test_superpixels_flag_is_checked(cli, in_tmp, semantic, instance, command, args, fragment):
    images = shapes_val_images(in_tmp / "images", count=1)
    named = {"INST": instance, "SEM": semantic, "IMAGES": images}
    args = [named.get(a, a) for a in args]
    user_error(cli(command, *args, "--out" if command == "infer" else "--json", "o"), fragment)
    assert not (in_tmp / "o").exists()
