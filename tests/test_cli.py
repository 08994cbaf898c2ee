"""The real CLI on real files: train -> eval -> infer, --pred/--gt, and every bad-input case."""

import json

import numpy as np
import pytest
from PIL import Image

from segcli.data.shapes import ShapesDataset
from segcli.engine import checkpoint
from segcli.viz import VOC_COLORMAP, label_image

from helpers import TINY_FCN, TINY_SHAPES, run_segcli, write_pair


def test_train_eval_infer_end_to_end(cli, in_tmp):
    result = cli("train", "fcn8s", *TINY_SHAPES, *TINY_FCN, "--iters", "3", "--save-every", "2")
    assert result.exit_code == 0, result.output
    run = in_tmp / "runs" / "fcn8s" / "1"
    for name in (
        "config.yaml",
        "last.pt",
        "best.pt",
        "metrics.jsonl",
        "curves.png",
        "confusion.png",
        "per_class_iou.png",
    ):
        assert (run / name).is_file(), name
    assert len(list((run / "samples").glob("*.jpg"))) == 4
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows if r["kind"] == "train"] == [1, 2, 3]
    assert any(r["kind"] == "val" and 0 <= r["miou"] <= 1 for r in rows)
    assert "per-class" not in result.output and "background" in result.output  # class table

    result = cli("eval", "--metric", "all", "--json", "scores.json")  # latest run's best.pt
    assert result.exit_code == 0, result.output
    scores = json.loads((in_tmp / "scores.json").read_text())
    assert {"pa", "mpa", "miou", "fwiou", "per_class_iou", "per_class_acc"} <= set(scores)
    assert f"miou: {scores['miou']:.4f}" in result.output

    images = in_tmp / "images"
    images.mkdir()
    shapes = ShapesDataset("val", 40, 2)
    for i in range(2):
        Image.fromarray(shapes.load(i)["image"]).save(images / f"s{i}.png")
    result = cli("infer", run / "best.pt", images, "--out", "pred")
    assert result.exit_code == 0, result.output
    label = Image.open(in_tmp / "pred" / "s0.png")
    assert label.mode == "P" and label.size == (40, 40)
    assert np.asarray(label).max() < 4
    assert Image.open(in_tmp / "pred" / "s0_overlay.jpg").size == (40, 40)


def test_pred_gt_mode_scores_saved_pngs(cli, in_tmp):
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 1]], np.uint8)
    for folder, array in (("gt", gt), ("pred", pred)):
        (in_tmp / folder).mkdir()
        label_image(array).save(in_tmp / folder / "a.png")
    result = cli(
        "eval",
        "--pred",
        "pred",
        "--gt",
        "gt",
        "--num-classes",
        "3",
        "--metric",
        "miou",
        "--json",
        "out.json",
    )
    assert result.exit_code == 0, result.output
    scores = json.loads((in_tmp / "out.json").read_text())
    # confusion rows: [1,1,0], [0,3,0], [1,0,1] -> IoU 1/3, 3/4, 1/2
    assert scores["per_class_iou"] == pytest.approx([1 / 3, 3 / 4, 1 / 2])
    assert "miou: 0.5278" in result.output


def test_infer_palette_uses_voc_colours(cli, in_tmp):
    result = cli("train", "fcn8s", *TINY_SHAPES, *TINY_FCN, "--iters", "1", "--out", "run")
    assert result.exit_code == 0, result.output
    Image.fromarray(ShapesDataset("val", 32, 1).load(0)["image"]).save(in_tmp / "photo.jpg")

    result = cli("infer", "run/best.pt", "photo.jpg", "--out", "pred")
    assert result.exit_code == 0, result.output
    label = Image.open(in_tmp / "pred" / "photo.png")
    assert label.mode == "P"
    palette = np.array(label.getpalette()).reshape(-1, 3)
    assert palette.shape == VOC_COLORMAP.shape and (palette == VOC_COLORMAP).all()


# --- bad input: one line naming the file or key, exit code 2, no traceback -----------------


def assert_user_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def train_tiny(data, cwd, *extra):
    return run_segcli(
        "train",
        "fcn8s",
        "--data",
        data,
        "--iters",
        "1",
        "--batch-size",
        "2",
        "--img-size",
        "32",
        "--workers",
        "0",
        *TINY_FCN,
        *extra,
        cwd=cwd,
    )


def test_corrupt_image_stops_training(voc_dir, tmp_path):
    (voc_dir / "JPEGImages" / "img03.jpg").write_bytes(b"\xff\xd8garbage")
    result = train_tiny(voc_dir, tmp_path, "--set", "batch_size=6")
    assert_user_error(result, "img03.jpg", "cannot decode image")


def test_corrupt_image_in_a_worker_is_still_one_line(voc_dir, tmp_path):
    (voc_dir / "JPEGImages" / "img01.jpg").write_bytes(b"nope")
    result = train_tiny(voc_dir, tmp_path, "--set", "batch_size=6", "--workers", "2")
    assert_user_error(result, "img01.jpg", "cannot decode image")


def test_mask_of_another_size(voc_dir, tmp_path):
    label_image(np.zeros((10, 10), np.uint8)).save(voc_dir / "SegmentationClass" / "img00.png")
    result = train_tiny(voc_dir, tmp_path, "--set", "batch_size=6")
    assert_user_error(result, "img00.png", "mask is 10x10 but its image is 56x40")


def test_label_out_of_range(voc_dir, tmp_path):
    label_image(np.full((40, 56), 9, np.uint8)).save(voc_dir / "SegmentationClass" / "img02.png")
    result = train_tiny(voc_dir, tmp_path, "--set", "batch_size=6")
    assert_user_error(result, "img02.png", "label value 9 >= num_classes 3")


def test_unpaired_pred_gt_files(tmp_path):
    rng = np.random.default_rng(0)
    write_pair(tmp_path / "img", tmp_path / "gt", "a", rng)
    write_pair(tmp_path / "img", tmp_path / "pred", "b", rng)
    result = run_segcli("eval", "--pred", "pred", "--gt", "gt", "--num-classes", "3", cwd=tmp_path)
    assert_user_error(result, "no partner", "a.png")


def test_unknown_recipe_and_set_key(tmp_path):
    assert_user_error(run_segcli("train", "fcn9s", cwd=tmp_path), "fcn9s", "did you mean")
    assert_user_error(
        run_segcli("train", "fcn8s", "--set", "batchsize=2", cwd=tmp_path),
        "batchsize",
        "did you mean batch_size",
    )


def test_corrupt_checkpoint_and_missing_run(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert_user_error(run_segcli("eval", "bad.pt", cwd=tmp_path), "bad.pt", "checkpoint")
    assert_user_error(run_segcli("eval", cwd=tmp_path), "no run with best.pt")


def test_bad_file_found_before_training_leaves_no_run_folder(voc_dir, tmp_path):
    (voc_dir / "JPEGImages" / "img03.jpg").write_bytes(b"broken")
    assert_user_error(train_tiny(voc_dir, tmp_path, "--out", "run"), "img03.jpg")
    assert not (tmp_path / "run").exists()


def test_bad_file_found_mid_training_leaves_whole_checkpoints_only(tmp_path):
    """Past the pre-flight's first 16 files, the error comes from the loader mid-epoch."""
    root = tmp_path / "many"
    rng = np.random.default_rng(2)
    for i in range(24):
        write_pair(root / "images", root / "masks", f"m{i:02d}", rng)
    (root / "train.txt").write_text("\n".join(f"m{i:02d}" for i in range(22)))
    (root / "val.txt").write_text("m22\nm23\n")
    (root / "images" / "m21.jpg").write_bytes(b"broken")
    result = train_tiny(
        root,
        tmp_path,
        "--set",
        "batch_size=2",
        "--iters",
        "40",
        "--out",
        "run",
        "--save-every",
        "1",
    )
    assert_user_error(result, "m21.jpg", "cannot decode image")
    leftovers = [p.name for p in (tmp_path / "run").iterdir()]
    assert not any(name.endswith(".tmp") for name in leftovers)
    assert checkpoint.load(tmp_path / "run" / "last.pt")["progress"]["iteration"] >= 1
